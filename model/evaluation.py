"""Classification metrics from true labels and predicted probabilities (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

EPS = 1e-7


def evaluate_probabilities(
    y_true: Sequence[str], proba: np.ndarray, model_labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, confusion matrix and log loss.

    ``proba`` columns follow ``model_labels``. True labels the model does not know count as errors;
    the confusion matrix rows cover every true label, columns every model label.
    """
    model_labels = list(model_labels)
    n = len(y_true)
    pred_idx = proba.argmax(axis=1) if n else np.zeros(0, dtype=int)
    y_pred = [model_labels[i] for i in pred_idx]
    true_labels = sorted(set(y_true) | set(model_labels))
    correct = sum(t == p for t, p in zip(y_true, y_pred, strict=True))
    confusion = [[sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == tl and p == pl)
                  for pl in true_labels] for tl in true_labels]
    per_class: dict[str, dict[str, float | int]] = {}
    for label in true_labels:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == label and p == label)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t != label and p == label)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    index = {label: i for i, label in enumerate(model_labels)}
    known = [(i, index[t]) for i, t in enumerate(y_true) if t in index]
    log_loss = (
        float(-np.mean([np.log(np.clip(proba[i, j], EPS, 1.0)) for i, j in known])) if known else None
    )
    supported = [c for c in per_class.values() if c["support"]]
    return {
        "n": n,
        "accuracy": correct / n if n else None,
        "macro_f1": float(np.mean([c["f1"] for c in supported])) if supported else None,
        "log_loss": log_loss,
        "per_class": per_class,
        "confusion_matrix": {"labels": true_labels, "matrix": confusion},
    }


def evaluate_directory(predictor: Any, root: Any, batch_size: int = 16) -> dict[str, Any]:
    """Evaluate a Predictor on a folder-per-label tree; unreadable files are listed, not fatal."""
    from model.errors import SproutError
    from model.samples import find_labeled_files

    y_true: list[str] = []
    arrays: list[np.ndarray] = []
    errors: list[dict[str, str]] = []
    for label, path in find_labeled_files(root):
        try:
            arrays.append(predictor.preprocess(path.read_bytes()))
        except (SproutError, OSError) as exc:
            errors.append({"file": str(path), "error": str(exc)})
            continue
        y_true.append(label)
    chunks = [predictor.predict_arrays(np.stack(arrays[i : i + batch_size]))
              for i in range(0, len(arrays), batch_size)]
    proba = np.concatenate(chunks) if chunks else np.zeros((0, len(predictor.labels)), dtype=np.float32)
    result = evaluate_probabilities(y_true, proba, predictor.labels)
    return {"model_version": predictor.version, **result, "errors": errors}
