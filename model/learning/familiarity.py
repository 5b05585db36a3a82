"""Unfamiliarity: how far an image's embedding lies from what the model was trained on — the cosine distance to
the nearest label centroid (the mean direction of each label's train+val embeddings), one row per label carried
inside the served graph (``model.serving.onnx_graph.add_unfamiliarity``).

Its threshold is a quantile of the same distance for held-out in-domain images: each train+val sample measured
against the centroids of the *other* cross-validation folds (near-duplicate groups never span folds), and each
test sample against the centroids of all train+val samples, so that about ``rate`` of in-domain images are flagged.

Why centroids and not the k-th nearest training embedding: ``bench/abstain.py`` measured both on two label sets and
three backbones; at the same share of in-domain images flagged, the centroid distance flags more images of another
label set (see docs/benchmarks.md), and its reference is a few rows instead of thousands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.serving.guards import UnfamiliarRule


@dataclass(frozen=True)
class Familiarity:
    """The centroids the graph carries and the rule that reads the score."""

    reference: np.ndarray  # (labels, dim), L2-normalised label centroids
    rule: UnfamiliarRule


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    scaled: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return scaled


def centroids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The unit mean direction of each label's unit embeddings (labels without a sample are left out)."""
    vectors = unit(x)
    return unit(np.stack([vectors[y == label].mean(axis=0) for label in np.unique(y)]))


def unfamiliarity(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``1 - cos`` from each query row to its nearest reference row: what the graph's ``unfamiliarity`` output
    computes."""
    if len(queries) == 0 or len(reference) == 0:
        return np.ones(len(queries), dtype=np.float32)
    scores: np.ndarray = (1.0 - (unit(queries) @ unit(reference).T).max(axis=1)).astype(np.float32)
    return scores


def held_out_distances(x_dev: np.ndarray, y_dev: np.ndarray, fold_of: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """The unfamiliarity of in-domain images the centroids never saw: each train+val sample against the centroids
    of the other folds, each test sample against those of all train+val samples."""
    parts = [unfamiliarity(x_dev[fold_of == fold], centroids(x_dev[fold_of != fold], y_dev[fold_of != fold]))
             for fold in np.unique(fold_of) if (fold_of != fold).any()]
    parts.append(unfamiliarity(x_test, centroids(x_dev, y_dev)))
    return np.concatenate(parts)


def fit_familiarity(x_dev: np.ndarray, y_dev: np.ndarray, fold_of: np.ndarray, x_test: np.ndarray, *,
                    rate: float) -> Familiarity:
    """The label centroids of the train+val embeddings and the threshold above which an image is unfamiliar: the
    ``1 - rate`` quantile of the held-out in-domain distances (``held_out_distances``)."""
    held = held_out_distances(x_dev, y_dev, fold_of, x_test)
    threshold = float(np.quantile(held, 1.0 - rate)) if len(held) else 1.0
    reference = centroids(x_dev, y_dev)
    return Familiarity(reference=reference, rule=UnfamiliarRule(
        threshold=threshold, reference_size=len(reference), in_domain_rate=float((held > threshold).mean())
        if len(held) else 0.0))
