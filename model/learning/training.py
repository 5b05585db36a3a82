"""Train a linear head on frozen embeddings: class-balanced and reproducible (numpy and scipy, no torch)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

log = logging.getLogger(__name__)

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)
MAX_ITERATIONS = 200


@dataclass
class Head:
    """A trained linear classifier: ``softmax(x @ weight.T + bias)``."""

    weight: np.ndarray  # (classes, dim)
    bias: np.ndarray  # (classes,)
    weight_decay: float
    val_log_loss: float | None

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ self.weight.T + self.bias, dtype=np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probabilities


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over samples), so every class counts equally."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def _fit(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float,
         start: Head | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the class-weighted mean cross-entropy plus ``weight_decay / 2 · ‖W‖²`` (convex: one minimum) with
    scipy's L-BFGS-B from zero or from ``start`` (a nearby solution: fewer steps), the objective and its gradient
    in numpy; deterministic.

    The optimiser works on centred features: ``x W^T + b = (x - mean) W^T + c`` with ``c = b + mean W^T``, the same
    problem (the decay is on ``W`` alone; ``c`` is free like ``b``), so the same minimum, but without the features'
    common offset (embeddings are non-negative: one direction of ``x`` dwarfs the others) L-BFGS reaches it in a
    fraction of the steps (about 25 instead of 170-200 at the default decays; docs/benchmarks.md). ``x`` itself is
    not copied: the mean enters the products as a rank-one correction."""
    from scipy.optimize import minimize

    n, dim = x.shape
    sample_weight = class_weights(y, n_classes)[y].astype(np.float64)
    sample_weight /= sample_weight.sum()
    rows = np.arange(n)
    mean = (sample_weight.astype(np.float32) @ x).astype(np.float64)  # the class-weighted mean embedding

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight = theta[: n_classes * dim].reshape(n_classes, dim)
        shift = theta[n_classes * dim :] - weight @ mean  # the bias of the uncentred features
        logits = (x @ weight.T.astype(np.float32)).astype(np.float64) + shift
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1))
        loss = float(np.sum(sample_weight * (log_norm - logits[rows, y]))) + 0.5 * weight_decay * float(
            np.sum(weight * weight))
        residual = np.exp(logits - log_norm[:, None])  # softmax
        residual[rows, y] -= 1.0
        residual *= sample_weight[:, None]
        total = residual.sum(axis=0)
        grad_weight = ((residual.astype(np.float32).T @ x).astype(np.float64) - np.outer(total, mean)
                       + weight_decay * weight)
        return loss, np.concatenate([grad_weight.ravel(), total])

    with single_threaded_blas():  # these small products are ~8x slower on BLAS threads
        theta0 = np.zeros(n_classes * dim + n_classes)
        if start is not None:
            theta0[: n_classes * dim] = start.weight.ravel()
            theta0[n_classes * dim :] = start.bias + start.weight.astype(np.float64) @ mean
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                          options={"maxiter": MAX_ITERATIONS, "gtol": 1e-6})
    log.debug("head fit on %d samples (decay %g, %s): %d steps", n, weight_decay, "from zero" if start is None
              else "warm", result.nit)
    weight = result.x[: n_classes * dim].reshape(n_classes, dim)
    return weight.astype(np.float32), (result.x[n_classes * dim :] - weight @ mean).astype(np.float32)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter: Any = None


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread while any caller is inside (threads fitting folds side by side share the one limit: the
    first in sets it, the last out restores it; a plain ``limit`` per fit would restore it under another's fit)."""
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = _blas().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


@cache
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded once numpy and scipy's optimiser are (inspected once: ~2 ms a time)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _weighted_log_loss(head: Head, x: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    p = head.predict_proba(x)[np.arange(len(y)), y]
    w = class_weights(y, n_classes)[y]
    return float(np.sum(-np.log(np.clip(p, 1e-7, 1.0)) * w) / np.sum(w))


def fit_head_with_decay(x: np.ndarray, y: np.ndarray, *, n_classes: int, weight_decay: float,
                        start: Head | None = None) -> Head:
    """A head fitted on all of ``x`` with a given weight decay (from ``start``, a head of similar data, if given)."""
    weight, bias = _fit(np.ascontiguousarray(x, dtype=np.float32), y, n_classes, weight_decay, start)
    return Head(weight=weight, bias=bias, weight_decay=weight_decay, val_log_loss=None)


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int,
) -> Head:
    """Fit a weighted-softmax head; choose the weight decay by validation log loss (the smaller decay on a tie).

    The decays are fitted strongest first, each from the previous solution (a regularisation path: fewer
    L-BFGS steps than from zero); deterministic for the same data. Without validation samples the middle
    weight decay is used.
    """
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    candidates = WEIGHT_DECAYS if len(y_val) else (WEIGHT_DECAYS[1],)
    heads: list[Head] = []
    for wd in sorted(candidates, reverse=True):
        weight, bias = _fit(x_train, y_train, n_classes, wd, heads[-1] if heads else None)
        head = Head(weight=weight, bias=bias, weight_decay=wd, val_log_loss=None)
        if len(y_val):
            head.val_log_loss = _weighted_log_loss(head, x_val.astype(np.float32), y_val, n_classes)
        heads.append(head)
    return min(heads, key=lambda h: (h.val_log_loss or 0.0, h.weight_decay))
