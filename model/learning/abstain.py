"""Abstain thresholds: per label, the lowest confidence at which the model's predictions of that label are still
right often enough (``SPROUT_ABSTAIN_PRECISION``), fitted on the selected candidate's out-of-fold predictions,
temperature-scaled as the served model is, so the thresholds mean what serving sees."""

from __future__ import annotations

import numpy as np

from model.serving.guards import AbstainRule


def fit_abstain_rule(proba: np.ndarray, y: np.ndarray, labels: list[str], *, target: float) -> AbstainRule:
    """Per label ``c``: among the out-of-fold predictions of ``c`` (argmax ``c``), the lowest threshold ``t`` such
    that those with confidence ≥ ``t`` have precision ≥ ``target``; None when no threshold reaches it (the label's
    predictions always abstain), or when the label was never predicted.

    ``proba``: calibrated out-of-fold probabilities (n, labels); ``y``: true label indices. The coverage is the
    share of the predictions kept (not abstained), the precision that of the kept ones."""
    predicted = proba.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    confidence = proba.max(axis=1) if len(y) else np.zeros(0)
    thresholds: dict[str, float | None] = {}
    kept = np.zeros(len(y), dtype=bool)
    for c, label in enumerate(labels):
        mine = np.flatnonzero(predicted == c)
        threshold = lowest_threshold(confidence[mine], y[mine] == c, target)
        thresholds[label] = threshold
        if threshold is not None:
            kept[mine[confidence[mine] >= threshold]] = True
    n_kept = int(kept.sum())
    return AbstainRule(target=target, thresholds=thresholds, coverage=n_kept / len(y) if len(y) else 0.0,
                       precision=float((predicted[kept] == y[kept]).mean()) if n_kept else None)


def lowest_threshold(confidence: np.ndarray, right: np.ndarray, target: float) -> float | None:
    """The lowest ``t`` among ``confidence`` with ``precision(confidence ≥ t) ≥ target`` (None: none has it).

    A threshold keeps every prediction at or above it, ties included, so only the last of a run of equal
    confidences (in descending order) is a possible cut."""
    if len(confidence) == 0:
        return None
    order = np.argsort(-confidence, kind="stable")
    ordered, hits = confidence[order], np.cumsum(right[order])
    precision = hits / np.arange(1, len(ordered) + 1)
    cut = np.append(ordered[1:] < ordered[:-1], True)  # the last position of each run of equal values
    meets = np.flatnonzero(cut & (precision >= target))
    return float(ordered[meets[-1]]) if len(meets) else None
