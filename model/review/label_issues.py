"""Suspect labels: approved samples whose label is probably wrong, from the last run's out-of-fold probabilities
(confident learning: Cleanlab's ``find_label_issues``, ranked by its label-quality score)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from db import queries
from db.models import SampleStatus
from model.runtime.services import Services


@dataclass(frozen=True)
class LabelIssue:
    """One suspect: the sample, its label, the label the out-of-fold model prefers, and how suspect it is (0–1)."""

    id: int
    sha256: str
    label: str
    suggested_label: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_label_issues(svc: Services, *, limit: int = 50) -> list[LabelIssue]:
    """The approved samples Cleanlab flags in the last successful run's out-of-fold probabilities, most suspect
    first. Samples relabelled, un-approved or gone since that run are skipped (their evidence is stale)."""
    from cleanlab.filter import find_label_issues as flag
    from cleanlab.rank import get_label_quality_scores

    with svc.session() as session:
        run = queries.last_succeeded_run(session)
        oof = run.out_of_fold if run is not None else None
        if not oof or not oof.get("sample_ids"):
            return []
        labels = list(oof["labels"])
        samples = queries.samples_by_id(session, ids=oof["sample_ids"])
    index = {label: i for i, label in enumerate(labels)}
    keep = [(i, samples[sid]) for i, sid in enumerate(oof["sample_ids"])
            if sid in samples and samples[sid].status is SampleStatus.APPROVED and samples[sid].label in index]
    if len(keep) < 2:
        return []
    proba = np.asarray(oof["proba"], dtype=np.float64)[[i for i, _ in keep]]
    proba /= proba.sum(axis=1, keepdims=True)
    given = np.array([index[s.label or ""] for _, s in keep])
    if len(np.unique(given)) < 2:
        return []
    flagged = flag(labels=given, pred_probs=proba, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(given, proba)
    return [LabelIssue(id=keep[i][1].id, sha256=keep[i][1].sha256, label=labels[given[i]],
                       suggested_label=labels[int(proba[i].argmax())], score=float(1.0 - quality[i]))
            for i in flagged[:limit]]
