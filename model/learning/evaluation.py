"""Evaluation: classification metrics from labels and probabilities (vectorised numpy), and the evidence about a
candidate, all on cached embeddings: cross-validation, Wilson intervals, the paired comparison with the champion
(McNemar's exact test), temperature scaling and its calibration error. Statistics from scipy, folds from
scikit-learn, both imported where used (the API imports this module and starts without them), heads from
``model.learning.training``; the records they fill are ``model.learning.evidence``'s."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.core.errors import NotEnoughDataError, SproutError
from model.data.importer import find_labeled_files
from model.learning.evidence import (
    Baseline,
    ChampionCrossValidation,
    ClassMetrics,
    ConfusionMatrix,
    GateEvidence,
    Interval,
    Metrics,
    Paired,
    RecallDelta,
)
from model.learning.training import Head, fit_head_with_decay, softmax, train_head

if TYPE_CHECKING:
    from model.learning.gate import GateRule
    from model.serving.predictor import Predictor

EPS = 1e-7


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
    per_class = {label: ClassMetrics(precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                                     support=int(support[i])) for i, label in enumerate(labels)}
    model_col = {label: j for j, label in enumerate(model_labels)}
    known = np.array([t in model_col for t in y_true], dtype=bool)
    cols = np.array([model_col.get(t, 0) for t in y_true], dtype=np.int64)
    rows = np.flatnonzero(known)
    log_loss = (float(-np.mean(np.log(np.clip(proba[rows, cols[rows]], EPS, 1.0)))) if rows.size else None)
    return Metrics(
        n=n,
        accuracy=float(tp.sum() / n) if n else None,
        macro_f1=float(f1[support > 0].mean()) if (support > 0).any() else None,
        log_loss=log_loss,
        per_class=per_class,
        confusion_matrix=ConfusionMatrix(labels=tuple(labels),
                                         matrix=tuple(tuple(int(v) for v in row) for row in confusion)),
    )


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
    return {"model_version": predictor.version, **result.to_dict(), "errors": errors}


# --- evidence about a candidate ---

CV_FOLDS = 5
ECE_BINS = 15


def wilson_interval(successes: int, n: int) -> Interval | None:
    """The 95% Wilson score interval of a proportion, ``(low, high)`` (None without trials)."""
    from scipy.stats import binomtest

    if n == 0:
        return None
    ci = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the sample-weighted mean |accuracy − confidence| over equal-width confidence bins."""
    if len(y) == 0:
        return 0.0
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    total = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=correct, minlength=bins) - np.bincount(which, weights=confidence,
                                                                                    minlength=bins))
    return float(gap[total > 0].sum() / len(y))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T > 0 that minimises the log loss of ``softmax(logits / T)`` (1.0 without data)."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))[np.arange(len(y)), y]
        return float(-np.mean(np.log(np.clip(p, EPS, 1.0))))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x)) if nll(result.x) <= nll(0.0) else 1.0


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold results of k-fold cross-validation over the train+val samples."""

    folds: int
    logits: np.ndarray  # (n, classes), each row from the fold model that did not see it
    y: np.ndarray
    weight_decays: list[float]  # the decay each fold chose on its own inner validation split
    fold_of: np.ndarray  # (n,) the fold each sample was held out in
    heads: tuple[Head, ...] = ()  # each fold's head, fitted on its whole training part with its chosen decay
    searched: int | None = None  # samples each fold's weight-decay search used at most (None: all of its part)

    @property
    def proba(self) -> np.ndarray:
        return softmax(self.logits)

    @property
    def accuracy(self) -> float:
        return float((self.logits.argmax(axis=1) == self.y).mean()) if len(self.y) else 0.0

    @property
    def accuracy_ci(self) -> Interval | None:
        return wilson_interval(int((self.logits.argmax(axis=1) == self.y).sum()), len(self.y))

    @property
    def weight_decay(self) -> float:
        """The decay most folds chose (the smaller on a tie): the final head's."""
        counts = Counter(self.weight_decays)
        return min(counts, key=lambda wd: (-counts[wd], wd))

    def start_head(self) -> Head | None:
        """Where the final head's fit starts: the mean of the fold heads fitted with its decay (each on ~80% of the
        same samples, so near its solution: fewer steps; the problem is convex, so the start does not change the
        answer beyond the optimiser's tolerance). None without fold heads."""
        chosen = [h for h in self.heads if h.weight_decay == self.weight_decay]
        if not chosen:
            return None
        return Head(weight=np.mean([h.weight for h in chosen], axis=0).astype(np.float32),
                    bias=np.mean([h.bias for h in chosen], axis=0).astype(np.float32),
                    weight_decay=self.weight_decay, val_log_loss=None)


def cross_validate(x: np.ndarray, y: np.ndarray, *, n_classes: int, seed: int, folds: int = CV_FOLDS,
                   groups: np.ndarray | None = None, search_samples: int | None = None,
                   workers: int = 1) -> CrossValidation:
    """Stratified k-fold (seeded); in each fold the weight decay is chosen on an inner stratified split of the
    fold's training part, so the out-of-fold predictions never saw the choice. Every label needs two samples
    (a rarer one is missing from some held-out folds); fewer folds only when no label has ``folds`` samples.

    ``groups`` (a near-duplicate group per sample): where a group has several samples, the folds and the inner
    splits keep each group whole (``StratifiedGroupKFold``), so no sample is judged by a model that saw its near
    copy; without such groups the folds are those of ``StratifiedKFold``.

    ``search_samples``: a fold whose training part is larger searches the decay on a seeded stratified subsample
    of that part of this size (``stratified_subsample``), then fits its head with the chosen decay on the whole
    part, starting from the subsample's solution. ``workers``: folds fitted side by side (threads; the same
    result as one at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    from model.learning.training import single_threaded_blas

    smallest = int(np.bincount(y, minlength=n_classes)[np.unique(y)].min()) if len(y) else 0
    if smallest < 2:
        raise NotEnoughDataError("Cross-validation needs at least two training samples of every label.")
    largest = int(np.bincount(y).max())
    k = max(2, min(folds, largest))  # StratifiedKFold needs some label with at least k samples
    logits = np.zeros((len(y), n_classes), dtype=np.float64)
    grouped = groups if groups is not None and len(np.unique(groups)) < len(groups) else None
    fold_indices = _folds(y, k, seed, grouped)
    fold_of = np.zeros(len(y), dtype=np.int64)

    def fit_fold(fold: int) -> Head:
        fit_idx, held_idx = fold_indices[fold]
        search = fit_idx
        if search_samples and len(fit_idx) > search_samples:
            search = fit_idx[stratified_subsample(y[fit_idx], search_samples, seed=seed + fold)]
        inner_fit, inner_val = _inner_split(y[search], seed + fold, None if grouped is None else grouped[search])
        head = train_head(x[search[inner_fit]], y[search[inner_fit]], x[search[inner_val]], y[search[inner_val]],
                          n_classes=n_classes)
        refit = fit_head_with_decay(x[fit_idx], y[fit_idx], n_classes=n_classes, weight_decay=head.weight_decay,
                                    start=head)
        logits[held_idx] = refit.logits(x[held_idx])
        fold_of[held_idx] = fold
        return refit

    with single_threaded_blas(), ThreadPoolExecutor(max_workers=max(1, min(workers, k))) as pool:
        heads = list(pool.map(fit_fold, range(len(fold_indices))))
    return CrossValidation(folds=k, logits=logits, y=y, weight_decays=[h.weight_decay for h in heads],
                           fold_of=fold_of, heads=tuple(heads),
                           searched=search_samples if search_samples and len(y) > search_samples else None)


def stratified_subsample(y: np.ndarray, size: int, *, seed: int) -> np.ndarray:
    """Sorted indices of about ``size`` of the samples, seeded, each label in its share of ``y`` (largest
    remainders round; every label keeps at least two samples, or all it has), so a rare label stays in the search."""
    labels, counts = np.unique(y, return_counts=True)
    if size >= len(y):
        return np.arange(len(y))
    exact = counts * (size / len(y))
    take = np.floor(exact).astype(np.int64)
    short = size - int(take.sum())
    if short > 0:
        take[np.argsort(-(exact - take), kind="stable")[:short]] += 1
    take = np.minimum(np.maximum(take, 2), counts)
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(y == label), size=int(n), replace=False) for label, n in zip(labels, take,
                                                                                                     strict=True)]
    return np.sort(np.concatenate(picked))


def _folds(y: np.ndarray, k: int, seed: int, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (fit, held-out) indices of each of ``k`` stratified folds, groups kept whole when given."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    with warnings.catch_warnings():  # a rare label (2-4 samples) is missing from some held-out folds: fine
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        if groups is None:
            return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y))
        k = min(k, len(np.unique(groups)))
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, groups))


def _inner_split(y: np.ndarray, seed: int, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of an inner 80/20 stratified split (no validation part when a label is too rare); with ``groups``,
    about 80/20 with each group on one side."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    classes = len(np.unique(y))
    held = math.ceil(0.2 * len(y))
    if np.bincount(y)[np.unique(y)].min() < 2 or len(y) < 10 or held < classes or len(y) - held < classes:
        return index, index[:0]
    if groups is not None and len(np.unique(groups)) >= 5:
        fit, val = _folds(y, 5, seed, groups)[0]
        return np.sort(fit), np.sort(val)
    fit, val = train_test_split(index, test_size=0.2, stratify=y, random_state=seed)
    return np.sort(fit), np.sort(val)


def cv_log_loss(cv: CrossValidation) -> float:
    p = cv.proba[np.arange(len(cv.y)), cv.y]
    return float(-np.mean(np.log(np.clip(p, EPS, 1.0)))) if len(cv.y) else float("inf")


def paired_counts(candidate_correct: np.ndarray, champion_correct: np.ndarray) -> Paired:
    c, h = candidate_correct.astype(bool), champion_correct.astype(bool)
    return Paired(both=int((c & h).sum()), candidate_only=int((c & ~h).sum()), champion_only=int((~c & h).sum()),
                  neither=int((~c & ~h).sum()))


def calibrated(head: Head, temperature: float) -> Head:
    """The head with the temperature folded into its weights: ``softmax((xW + b) / T)`` at no runtime cost."""
    return Head(weight=(head.weight / temperature).astype(np.float32), bias=(head.bias / temperature).astype(
        np.float32), weight_decay=head.weight_decay, val_log_loss=head.val_log_loss)


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling fitted on the out-of-fold logits, and the calibration error before and after."""

    temperature: float
    ece_before: float
    ece_after: float


def calibrate(cv: CrossValidation) -> Calibration:
    temperature = fit_temperature(cv.logits, cv.y)
    return Calibration(temperature=temperature, ece_before=expected_calibration_error(cv.proba, cv.y),
                       ece_after=expected_calibration_error(softmax(cv.logits / temperature), cv.y))


def correct(y_true: list[str], proba: np.ndarray, labels: list[str]) -> np.ndarray:
    """Per sample: did the model whose columns are ``labels`` pick the true label?"""
    if not y_true:
        return np.zeros(0, dtype=bool)
    picked: np.ndarray = np.array(labels, dtype=object)[proba.argmax(axis=1)] == np.array(y_true, dtype=object)
    return picked


def build_evidence(
    *, cv: CrossValidation, calibration: Calibration, y_test: list[str], candidate_metrics: Metrics,
    candidate_correct: np.ndarray, champion_version: str | None, champion_metrics: Metrics | None,
    champion_correct: np.ndarray | None, rule: GateRule | None = None,
    champion_cv: tuple[np.ndarray, np.ndarray] | None = None,
) -> GateEvidence:
    """The evidence the gate decides on (and the run record, MLflow and the UI show). ``champion_cv`` is the
    candidate's and the champion run's out-of-fold correctness on the train+val samples both cross-validated."""
    n_test = len(y_test)
    paired = (paired_counts(candidate_correct, champion_correct)
              if champion_metrics is not None and champion_correct is not None and n_test else None)
    recall_deltas = {}
    if champion_metrics is not None:
        for label, values in candidate_metrics.per_class.items():
            before = champion_metrics.per_class.get(label)
            if before is not None and values.support:
                recall_deltas[label] = RecallDelta(candidate=values.recall, champion=before.recall,
                                                   delta=values.recall - before.recall, support=values.support)
    return GateEvidence(
        n_cv=len(cv.y), cv_folds=cv.folds, cv_accuracy=cv.accuracy, cv_accuracy_ci=cv.accuracy_ci,
        cv_log_loss=cv_log_loss(cv), cv_macro_f1=_macro_f1(cv.y, cv.proba.argmax(axis=1)),
        test_accuracy=candidate_metrics.accuracy, n_test=n_test,
        test_accuracy_ci=wilson_interval(int(candidate_correct.sum()), n_test), champion_version=champion_version,
        champion_test_accuracy=champion_metrics.accuracy if champion_metrics is not None else None,
        paired=paired, mcnemar_p=paired.mcnemar_p if paired is not None else None, recall_deltas=recall_deltas,
        temperature=calibration.temperature, ece_before=calibration.ece_before, ece_after=calibration.ece_after,
        rule=rule, baseline=trivial_baseline(cv.y, y_test, n_labels=cv.logits.shape[1]),
        champion_cv=(compare_out_of_fold(*champion_cv) if champion_cv is not None and len(champion_cv[0])
                     and champion_metrics is not None else None),
    )


def trivial_baseline(y_cv: np.ndarray, y_test: Sequence[str], *, n_labels: int) -> Baseline:
    """The accuracy of always answering the commonest label, in the cross-validated and in the test samples."""
    cv_share = float(np.bincount(y_cv).max() / len(y_cv)) if len(y_cv) else 1.0 / max(n_labels, 1)
    test_share = max(Counter(y_test).values()) / len(y_test) if len(y_test) else None
    return Baseline(share=cv_share, test_share=test_share, n_labels=n_labels)


def compare_out_of_fold(candidate_right: np.ndarray, champion_right: np.ndarray) -> ChampionCrossValidation:
    """The candidate's and the champion run's out-of-fold correctness on the same train+val samples: their
    accuracies and the one-sided exact McNemar p-value of "the champion run's is higher"."""
    paired = paired_counts(candidate_right, champion_right)
    return ChampionCrossValidation(accuracy=float(champion_right.mean()),
                                   candidate_accuracy=float(candidate_right.mean()), n=len(candidate_right),
                                   p=paired.mcnemar_p)


def _macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro")) if len(y) else 0.0
