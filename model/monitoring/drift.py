"""Drift and health of live traffic: the window of recent predictions against the champion's training set.

Three signals from the embeddings and calibrated confidences of the newest predictions the champion served:

* a drift score with its threshold: the RBF-kernel MMD² between the live and the training embeddings with a
  seeded permutation threshold (default), or a domain classifier's cross-validated AUC (live vs training)
  with the threshold of the AUC of two samples from one distribution; ``bench/drift.py`` compares them;
* the live mean confidence against the champion's mean confidence on its own test split;
* the share of novel images: best cosine to any training embedding below ``SPROUT_DRIFT_NOVEL_SIMILARITY``.

Drift is declared only from ``SPROUT_DRIFT_MIN_PREDICTIONS`` predictions on (``reason`` says why not).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from db import prediction_window, queries
from db.models import Split
from model.core.settings import Settings
from model.data.near_duplicates import normalized
from model.learning.embeddings import load_cached
from model.learning.evaluation import stratified_subsample
from model.learning.training import softmax
from model.runtime.services import Services
from model.serving.contract import META_BACKBONE

log = logging.getLogger(__name__)
REFERENCE_MAX = 1000  # training embeddings the tests compare with (a seeded subsample, stratified by label, beyond)
TEST_REFERENCE_MAX = 5000  # test embeddings the reference's mean confidence is measured on (likewise)


@dataclass(frozen=True)
class Reference:
    """What live traffic is compared with: the champion's training embeddings (unit length) and its mean
    calibrated confidence on its test split."""

    version: str
    backbone: str
    embeddings: np.ndarray
    mean_confidence: float | None


@dataclass(frozen=True)
class DriftReport:
    """The drift of the window against the champion's training set (``drift_score`` None: not computed)."""

    drift_score: float | None
    threshold: float | None
    drifted: bool
    n: int
    mean_confidence: float | None
    reference_mean_confidence: float | None
    novel_share: float | None = None
    method: str = "mmd"
    model_version: str | None = None
    backbone: str | None = None
    reference_n: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- the two candidate scores


def mmd_test(reference: np.ndarray, live: np.ndarray, *, alpha: float = 0.01, permutations: int = 200,
             seed: int = 0) -> tuple[float, float]:
    """``(MMD², threshold)``: the biased MMD² of an RBF kernel (bandwidth: the median squared distance of the
    pooled unit vectors) and the ``1 - alpha`` quantile of its value over seeded label permutations."""
    pooled = normalized(np.concatenate([reference, live])).astype(np.float64)
    n_ref, n_live = len(reference), len(live)
    sq = np.maximum(2.0 - 2.0 * pooled @ pooled.T, 0.0)
    off = sq[np.triu_indices(len(pooled), k=1)]
    bandwidth = float(np.median(off)) or 1.0
    kernel = np.exp(-sq / bandwidth)
    rng = np.random.default_rng(seed)
    weights = np.empty((permutations + 1, len(pooled)))
    weights[0] = np.r_[np.full(n_ref, -1.0 / n_ref), np.full(n_live, 1.0 / n_live)]
    for i in range(1, permutations + 1):
        weights[i] = rng.permutation(weights[0])
    stats = np.einsum("pi,pi->p", weights @ kernel, weights)
    return float(stats[0]), float(np.quantile(stats[1:], 1.0 - alpha, method="higher"))


def domain_auc(reference: np.ndarray, live: np.ndarray, *, alpha: float = 0.01, seed: int = 0) -> tuple[float, float]:
    """``(AUC, threshold)``: the cross-validated ROC AUC of a logistic regression telling live from training
    embeddings, and the ``1 - alpha`` quantile of the AUC of two samples of one distribution (normal
    approximation of the Mann-Whitney statistic: ``0.5 + z * sqrt((m + n + 1) / 12mn)``)."""
    from scipy.stats import norm
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = normalized(np.concatenate([reference, live]))
    y = np.r_[np.zeros(len(reference)), np.ones(len(live))]
    folds = StratifiedKFold(n_splits=max(2, min(5, len(reference), len(live))), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced"))
    proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    m, n = len(live), len(reference)
    threshold = 0.5 + float(norm.ppf(1.0 - alpha)) * math.sqrt((m + n + 1) / (12.0 * m * n))
    return float(roc_auc_score(y, proba)), threshold


def drift_score(method: str, reference: np.ndarray, live: np.ndarray, *, alpha: float, permutations: int,
                seed: int) -> tuple[float, float]:
    """``(score, threshold)`` of ``method`` ("mmd" or "auc")."""
    if method == "mmd":
        return mmd_test(reference, live, alpha=alpha, permutations=permutations, seed=seed)
    return domain_auc(reference, live, alpha=alpha, seed=seed)


def novel_share(reference: np.ndarray, live: np.ndarray, *, min_similarity: float) -> float:
    """Share of live embeddings whose best cosine to any reference embedding is below ``min_similarity``."""
    best = (normalized(live) @ normalized(reference).T).max(axis=1)
    return float(np.mean(best < min_similarity))


# --------------------------------------------------------------------------- the report


def assess(reference: Reference | None, live: np.ndarray, confidences: np.ndarray, settings: Settings, *,
           version: str | None = None) -> DriftReport:
    """The report for live embeddings (rows) and their confidences against ``reference``."""
    n = len(live)
    mean_conf = float(np.mean(confidences)) if len(confidences) else None
    base: dict[str, Any] = {
        "n": n, "mean_confidence": mean_conf, "method": settings.drift_method,
        "model_version": reference.version if reference else version,
        "backbone": reference.backbone if reference else None,
        "reference_mean_confidence": reference.mean_confidence if reference else None,
        "reference_n": len(reference.embeddings) if reference else 0}
    if reference is None or len(reference.embeddings) < 2:
        return DriftReport(drift_score=None, threshold=None, drifted=False, **base,
                           reason="no reference: the champion's training embeddings are not cached"
                           if version else "no champion model")
    if n < 2:
        return DriftReport(drift_score=None, threshold=None, drifted=False, **base,
                           reason=f"too few predictions with embeddings: {n} of {settings.drift_min_predictions}")
    score, threshold = drift_score(settings.drift_method, reference.embeddings, live, alpha=settings.drift_alpha,
                                   permutations=settings.drift_permutations, seed=settings.seed)
    novel = novel_share(reference.embeddings, live, min_similarity=settings.drift_novel_similarity)
    enough = n >= settings.drift_min_predictions
    return DriftReport(drift_score=score, threshold=threshold, drifted=enough and score > threshold,
                       novel_share=novel, **base,
                       reason=None if enough else f"too few predictions: {n} of {settings.drift_min_predictions}")


def load_reference(svc: Services, version: str) -> Reference | None:
    """The training embeddings and test-split mean confidence of the run that produced ``version``."""
    with svc.session() as session:
        run = queries.get_run_by_version(session, version=version)
        if run is None:
            return None
        lineage = queries.run_lineage(session, run_id=run.id)
        train = reference_sample([(s.sha256, row.label) for row, s in lineage if row.split is Split.TRAIN],
                                 REFERENCE_MAX, seed=svc.settings.seed)
        test = reference_sample([(s.sha256, row.label) for row, s in lineage if row.split is Split.TEST],
                                TEST_REFERENCE_MAX, seed=svc.settings.seed)
        cached = load_cached(session, run.backbone, train + test)
    vectors = [cached[h] for h in train if h in cached]
    if len(vectors) < 2:
        return None
    embeddings = normalized(np.stack(vectors))
    tested = [cached[h] for h in test if h in cached]
    return Reference(version=version, backbone=run.backbone, embeddings=embeddings,
                     mean_confidence=test_mean_confidence(svc, version, run.backbone, tested))


def reference_sample(rows: list[tuple[str, str]], size: int, *, seed: int) -> list[str]:
    """The hashes of at most ``size`` of ``(sha256, label)`` rows: all of them, or a seeded subsample stratified by
    label (each label in its share: ``stratified_subsample``), chosen before any vector is read, so a reference of
    100k training images costs ``size`` rows of the cache, not all."""
    if len(rows) <= size:
        return [sha for sha, _ in rows]
    codes = {label: i for i, label in enumerate(sorted({label for _, label in rows}))}
    keep = stratified_subsample(np.array([codes[label] for _, label in rows]), size, seed=seed)
    return [rows[i][0] for i in keep]


def test_mean_confidence(svc: Services, version: str, backbone: str, vectors: list[np.ndarray]) -> float | None:
    """The served (calibrated) head's mean max-probability on the test embeddings (None when not comparable)."""
    from model.serving.onnx_graph import read_head

    if not vectors:
        return None
    _, path = svc.registry.model_file(version)
    meta, weight, bias = read_head(path)
    x = np.stack(vectors)
    if meta.get(META_BACKBONE, backbone) != backbone or weight.shape[1] != x.shape[1]:
        return None
    return float(softmax(x @ weight.T.astype(np.float64) + bias).max(axis=1).mean())


def live_window(svc: Services, version: str, backbone: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (rows) and confidences of the newest predictions ``version`` served (with an embedding); rows
    that are not finite (stored before the recorder refused them) are left out."""
    with svc.session() as session:
        rows = prediction_window.recent_predictions(session, model_version=version, limit=svc.settings.drift_window)
    rows = [r for r in rows if r.embedding is not None and (backbone is None or r.backbone in (None, backbone))]
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0)
    live = np.stack([np.frombuffer(r.embedding or b"", dtype=np.float32) for r in rows])
    confidences = np.array([r.confidence for r in rows], dtype=np.float64)
    finite = np.isfinite(live).all(axis=1) & np.isfinite(confidences)
    return live[finite], confidences[finite]


def drift_report(svc: Services, version: str | None, *, reference: Reference | None = None) -> DriftReport:
    """The drift report of the predictions ``version`` (the champion) served lately."""
    if version is None:
        return assess(None, np.zeros((0, 0)), np.zeros(0), svc.settings)
    reference = reference if reference is not None and reference.version == version else load_reference(svc,
                                                                                                         version)
    live, confidences = live_window(svc, version, reference.backbone if reference else None)
    return assess(reference, live, confidences, svc.settings, version=version)


class DriftMonitor:
    """The latest report, recomputed every ``SPROUT_DRIFT_REFRESH_SECONDS`` off the request path (for /metrics);
    the reference is loaded once per champion version."""

    def __init__(self, svc: Services, champion: Callable[[], str | None]) -> None:
        self.svc, self.champion = svc, champion
        self.latest: DriftReport | None = None
        self._reference: Reference | None = None
        self._computed_for: tuple[str | None, tuple[int, int]] | None = None  # (version, window mark) of latest
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def compute(self, *, force: bool = True) -> DriftReport:
        """A fresh report (kept as ``latest``); without ``force``, the latest one while the champion and the
        window are unchanged (one cheap query)."""
        with self._lock:
            version = self.champion()
            with self.svc.session() as session:
                key = (version, prediction_window.prediction_window_mark(session))
            if not force and self.latest is not None and key == self._computed_for:
                return self.latest
            if version is not None and (self._reference is None or self._reference.version != version):
                self._reference = load_reference(self.svc, version)
            report = drift_report(self.svc, version, reference=self._reference)
            self.latest, self._computed_for = report, key
            return report

    def run_forever(self) -> None:
        while True:
            try:
                self.compute(force=False)
            except Exception as exc:  # database or registry down: keep the last report, try again later
                log.warning("drift report failed: %s: %s", type(exc).__name__, exc)
            if self._stop.wait(self.svc.settings.drift_refresh_seconds):
                return

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run_forever, name="drift-monitor", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()
