"""Suspect labels: approved samples whose label is probably wrong, from the probabilities the last successful run
judged every sample by (``model.learning.label_evidence``: out-of-fold for train+val, out-of-sample for test).

Cleanlab ranks them all together by its label-quality score (self-confidence), most suspect first, and marks the
ones its ``find_label_issues`` counts as label errors (``flagged``). The ranking is not cut at the flagged ones:
with 10% of a set's labels flipped, Cleanlab flags fewer samples than were flipped on some split keys, while the
ranking's top 2 × (flipped) holds at least 81% of them on every key measured (``bench/suspects.py``: 30 keys, two
sets)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from db import queries
from db.models import SampleStatus
from model.learning.label_evidence import LabelEvidence, Source
from model.runtime.services import Services


@dataclass(frozen=True)
class LabelIssue:
    """One suspect: the sample, its label, the likeliest other label, how suspect it is (0–1), whether Cleanlab
    counts it as a label error, and which model judged it (out-of-fold: train/val; out-of-sample: test)."""

    id: int
    sha256: str
    label: str
    suggested_label: str
    score: float
    flagged: bool
    evidence: Source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Ranking:
    """Cleanlab's verdict on given labels: rows most suspect first, each row's score and flag."""

    order: np.ndarray  # row indices, most suspect first
    score: np.ndarray  # 1 − label quality (self-confidence), per row
    flagged: np.ndarray  # bool per row: ``cleanlab.filter.find_label_issues`` counts it as a label error


def rank_suspects(given: np.ndarray, proba: np.ndarray) -> Ranking:
    """Rank rows of ``proba`` (probabilities of models that did not train on them; at least two labels given) by
    Cleanlab's label-quality score of their ``given`` label, lowest quality first (ties by row)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(given, proba, method="self_confidence")
    flagged = find_label_issues(labels=given, pred_probs=proba, n_jobs=1)
    return Ranking(order=np.argsort(quality, kind="stable"), score=1.0 - quality,
                   flagged=np.asarray(flagged, dtype=bool))


def likeliest_other(given: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Per row, the most probable label other than the given one (what to relabel it as if it is wrong)."""
    others = proba.copy()
    others[np.arange(len(given)), given] = -np.inf
    picked: np.ndarray = others.argmax(axis=1)
    return picked


def find_label_issues(svc: Services, *, limit: int = 50) -> list[LabelIssue]:
    """The approved samples of the last successful run, most suspect first (at most ``limit``). Samples
    relabelled, un-approved or gone since that run are skipped (their evidence is stale)."""
    with svc.session() as session:
        run = queries.last_succeeded_run(session)
        evidence = LabelEvidence.from_dict(run.out_of_fold if run is not None else None)
        if evidence is None:
            return []
        samples = queries.samples_by_id(session, ids=evidence.sample_ids)
    labels = evidence.labels
    index = {label: i for i, label in enumerate(labels)}
    keep = [(i, samples[sid]) for i, sid in enumerate(evidence.sample_ids)
            if sid in samples and samples[sid].status is SampleStatus.APPROVED and samples[sid].label in index]
    if len(keep) < 2:
        return []
    proba = evidence.proba[[i for i, _ in keep]]
    proba /= proba.sum(axis=1, keepdims=True)
    given = np.array([index[s.label or ""] for _, s in keep])
    if len(np.unique(given)) < 2:
        return []
    ranking = rank_suspects(given, proba)
    other = likeliest_other(given, proba)
    return [LabelIssue(id=keep[i][1].id, sha256=keep[i][1].sha256, label=labels[given[i]],
                       suggested_label=labels[other[i]], score=float(ranking.score[i]),
                       flagged=bool(ranking.flagged[i]), evidence=evidence.source(keep[i][0]))
            for i in ranking.order[:limit]]
