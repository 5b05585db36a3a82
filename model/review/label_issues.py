"""Suspect labels: approved samples whose label is probably wrong, from the probabilities the last successful run
judged every sample by (``model.learning.label_evidence``: out-of-fold for train+val, out-of-sample for test).

Cleanlab ranks them all together by its label-quality score (self-confidence), most suspect first, and marks the
ones its ``find_label_issues`` counts as label errors (``flagged``). The ranking is not cut at the flagged ones:
with 10% of a set's labels flipped, Cleanlab flags fewer samples than were flipped on some split keys, while the
ranking's top 2 × (flipped) holds at least 81% of them on every key measured (``bench/suspects.py``: 30 keys, two
sets)."""

from __future__ import annotations

import threading
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


@dataclass(frozen=True)
class RunSuspects:
    """One run's ranking, most suspect first, with the label each row was trained with: computed once per run (its
    evidence never changes), then each request only checks that its rows are still approved with that label."""

    run_id: int
    issues: list[LabelIssue]


_CACHE: dict[str, RunSuspects] = {}  # database URL -> its last run's suspects (a process serves one; tests open many)
_CACHE_LOCK = threading.Lock()


def find_label_issues(svc: Services, *, limit: int = 50) -> list[LabelIssue]:
    """The approved samples of the last successful run, most suspect first (at most ``limit``). Samples
    relabelled, un-approved or gone since that run are skipped (their evidence is stale). The run's ranking is
    computed once per process and run (at 100,000 samples it reads the whole evidence and every lineage row); a
    request then reads only the rows of the page it returns, and a few it skips."""
    with svc.session() as session:
        run = queries.last_succeeded_run(session)
    # no connection held while another request ranks the run (the first after a run waits for that one)
    suspects = _run_suspects(svc, run.id) if run is not None else None
    if suspects is None:
        return []
    with svc.session() as session:
        issues: list[LabelIssue] = []
        for start in range(0, len(suspects.issues), max(2 * limit, 100)):
            chunk = suspects.issues[start : start + max(2 * limit, 100)]
            current = queries.samples_by_id(session, ids=[i.id for i in chunk])
            issues += [i for i in chunk if (s := current.get(i.id)) is not None
                       and s.status is SampleStatus.APPROVED and s.label == i.label]
            if len(issues) >= limit:
                break
    return issues[:limit]


def forget_run_suspects() -> None:
    """Drop this process's cached ranking (a test that rewrites a run's evidence; the product never does)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _run_suspects(svc: Services, run_id: int) -> RunSuspects | None:
    database = svc.settings.resolved_database_url
    with _CACHE_LOCK:
        cached = _CACHE.get(database)
        if cached is None or cached.run_id != run_id:
            cached = _CACHE[database] = _rank_run(svc, run_id)
    return cached if cached.issues else None


def _rank_run(svc: Services, run_id: int) -> RunSuspects:
    """Cleanlab's ranking of every sample the run judged, with the label it trained with (its lineage)."""
    with svc.session() as session:
        run = queries.get_run(session, run_id=run_id)
        evidence = LabelEvidence.from_dict(run.out_of_fold if run is not None else None)
        trained = queries.lineage_labels(session, run_id=run_id) if evidence is not None else {}
    if evidence is None:
        return RunSuspects(run_id, [])
    index = {label: i for i, label in enumerate(evidence.labels)}
    keep = [(row, sid) for row, sid in enumerate(evidence.sample_ids) if sid in trained and trained[sid][0] in index]
    given = np.array([index[trained[sid][0]] for _, sid in keep], dtype=np.int64)
    if len(keep) < 2 or len(np.unique(given)) < 2:
        return RunSuspects(run_id, [])
    proba = evidence.proba[[row for row, _ in keep]]
    proba /= proba.sum(axis=1, keepdims=True)
    ranking = rank_suspects(given, proba)
    other = likeliest_other(given, proba)
    labels = evidence.labels
    return RunSuspects(run_id, [
        LabelIssue(id=keep[i][1], sha256=trained[keep[i][1]][1], label=labels[given[i]],
                   suggested_label=labels[other[i]], score=float(ranking.score[i]), flagged=bool(ranking.flagged[i]),
                   evidence=evidence.source(keep[i][0])) for i in ranking.order])
