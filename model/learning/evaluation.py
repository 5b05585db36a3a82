"""Classification metrics from true labels and predicted probabilities (numpy only, no per-sample loops)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.core.errors import SproutError
from model.data.importer import find_labeled_files

if TYPE_CHECKING:
    from model.serving.predictor import Predictor

EPS = 1e-7


Metrics = dict[str, Any]
"""JSON-ready metrics: ``n``, ``accuracy``, ``macro_f1``, ``log_loss``, ``per_class``, ``confusion_matrix``."""


def evaluate_probabilities(y_true: Sequence[str], proba: np.ndarray, model_labels: Sequence[str]) -> Metrics:
    """Accuracy, per-class precision/recall/F1/support, confusion matrix and log loss (vectorised).

    ``proba`` columns follow ``model_labels``. True labels the model does not know count as errors;
    the confusion matrix rows and columns cover every true and every model label.
    """
    model_labels = list(model_labels)
    n = len(y_true)
    labels = sorted(set(y_true) | set(model_labels))
    index = {label: i for i, label in enumerate(labels)}
    true_idx = np.fromiter((index[t] for t in y_true), dtype=np.int64, count=n)
    column_to_label = np.array([index[m] for m in model_labels], dtype=np.int64)
    pred_idx = column_to_label[proba.argmax(axis=1)] if n else np.zeros(0, dtype=np.int64)
    k = len(labels)
    confusion = np.bincount(true_idx * k + pred_idx, minlength=k * k).reshape(k, k)
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    per_class = {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                         "support": int(support[i])} for i, label in enumerate(labels)}
    model_col = {label: j for j, label in enumerate(model_labels)}
    known = np.array([t in model_col for t in y_true], dtype=bool)
    cols = np.array([model_col.get(t, 0) for t in y_true], dtype=np.int64)
    rows = np.flatnonzero(known)
    log_loss = (float(-np.mean(np.log(np.clip(proba[rows, cols[rows]], EPS, 1.0)))) if rows.size else None)
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else None,
        "macro_f1": float(f1[support > 0].mean()) if (support > 0).any() else None,
        "log_loss": log_loss,
        "per_class": per_class,
        "confusion_matrix": {"labels": labels, "matrix": confusion.astype(int).tolist()},
    }


def evaluate_directory(predictor: Predictor, root: Path, batch_size: int = 16) -> dict[str, Any]:
    """Evaluate a Predictor on a folder-per-label tree; unreadable files are listed, not fatal."""

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
