"""Train a linear head on frozen embeddings: class-balanced, seeded and reproducible."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)


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
    return exp / exp.sum(axis=1, keepdims=True)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights (mean 1 over samples), so every class counts equally."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def _fit(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float, seed: int,
         device: str) -> tuple[np.ndarray, np.ndarray]:
    import torch

    torch.manual_seed(seed)
    xt = torch.from_numpy(x).to(device)
    yt = torch.from_numpy(y).long().to(device)
    layer = torch.nn.Linear(x.shape[1], n_classes).to(device)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(y, n_classes)).to(device))
    opt = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=200, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(layer(xt), yt) + 0.5 * weight_decay * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer.weight.detach().cpu().numpy().copy(), layer.bias.detach().cpu().numpy().copy()


def _weighted_log_loss(head: Head, x: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    p = head.predict_proba(x)[np.arange(len(y)), y]
    w = class_weights(y, n_classes)[y]
    return float(np.sum(-np.log(np.clip(p, 1e-7, 1.0)) * w) / np.sum(w))


def fit_head_with_decay(x: np.ndarray, y: np.ndarray, *, n_classes: int, weight_decay: float, seed: int = 0,
                        device: str = "cpu") -> Head:
    """A head fitted on all of ``x`` with a given weight decay."""
    weight, bias = _fit(np.ascontiguousarray(x, dtype=np.float32), y, n_classes, weight_decay, seed, device)
    return Head(weight=weight, bias=bias, weight_decay=weight_decay, val_log_loss=None)


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int,
    seed: int = 0,
    device: str = "cpu",
) -> Head:
    """Fit a weighted-softmax head; choose the weight decay by validation log loss.

    Full-batch L-BFGS from a zero start is deterministic for the same data and seed.
    Without validation samples the middle weight decay is used.
    """
    x_train = np.ascontiguousarray(x_train, dtype=np.float32)
    candidates = WEIGHT_DECAYS if len(y_val) else (WEIGHT_DECAYS[1],)
    best: Head | None = None
    for wd in candidates:
        weight, bias = _fit(x_train, y_train, n_classes, wd, seed, device)
        head = Head(weight=weight, bias=bias, weight_decay=wd, val_log_loss=None)
        if len(y_val):
            head.val_log_loss = _weighted_log_loss(head, x_val.astype(np.float32), y_val, n_classes)
        if best is None or (head.val_log_loss or 0.0) < (best.val_log_loss or 0.0):
            best = head
    assert best is not None
    return best
