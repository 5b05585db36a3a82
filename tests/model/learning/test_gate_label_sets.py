"""The default gate (no absolute floor) on the six-label scenes set, under random split keys: the first model is
promoted, a candidate whose labels are 30% flipped is refused once that champion exists, and first models on
shuffled labels are refused at the rate the gate is designed for (the pipeline's own functions on lite0
embeddings; ``bench/gate_label_sets.py`` prints the figures of ten keys)."""

from __future__ import annotations

import hashlib
import secrets

import numpy as np
import pytest

from db.models import Split
from model.core.settings import Settings
from model.data.images import load_and_preprocess
from model.data.importer import find_labeled_files
from model.data.samples import split_for
from model.learning.evaluation import correct, cross_validate, evaluate_probabilities
from model.learning.evidence import Metrics
from model.learning.final_evaluation import Evaluation, final_head, judge
from model.learning.gate import GateRule
from model.learning.training import Head
from tests.utils.paths import SCENES

pytestmark = pytest.mark.slow
RULE = GateRule.from_settings(Settings(_env_file=None))
KEYS = 3  # random each session: a pinned key hides the variance users meet
SHUFFLES = 20
MAX_CHANCE_PASSES = 3
"""A model of shuffled labels has chance accuracy; the gate promotes it when the 95% interval's lower bound still
beats the baseline — by design at most about 2.5% of the time (one-sided), measured 2 of 60. Over 20 shuffles,
4 or more passes has probability 0.0003 at 2.5% (0.005 at the measured 3.3%): a failure means the rate rose."""
Scenes = tuple[np.ndarray, np.ndarray, list[str], np.ndarray]
"""lite0 embeddings, label indices, label names, content hashes."""


@pytest.fixture(scope="module")
def scenes() -> Scenes:
    """Every scenes photo: lite0 embeddings, label indices, label names, content hashes."""
    from model.learning.backbones import load_backbone
    from model.learning.embeddings import embed_batch

    files = find_labeled_files(SCENES)
    labels = sorted({label for label, _ in files})
    assert len(labels) == 6 and len(files) == 360, f"the scenes set must be 6 x 60 photos at {SCENES}"
    data = [path.read_bytes() for _, path in files]
    backbone = load_backbone("efficientnet_lite0", Settings(_env_file=None, device="cpu"))
    x = np.concatenate([embed_batch(backbone, np.stack([load_and_preprocess(d, backbone.spec) for d in data[i:i + 32]]))
                        for i in range(0, len(data), 32)])
    return x, np.array([labels.index(label) for label, _ in files]), labels, np.array(
        [hashlib.sha256(d).hexdigest() for d in data])


def run(scenes: Scenes, key: str, y: np.ndarray,
        champion: tuple[Head, np.ndarray] | None = None) -> tuple[Evaluation, tuple[Head, np.ndarray]]:
    """A run on labels ``y`` under ``key``, against ``champion`` (its head, its run's out-of-fold correctness on
    the same train+val samples: the same key)."""
    x, _, labels, hashes = scenes
    split = np.array([split_for(sha, key=key) for sha in hashes])
    dev, test = split != Split.TEST, split == Split.TEST
    cv = cross_validate(x[dev], y[dev], n_classes=len(labels), seed=0)
    head, calibration = final_head(cv, x[dev], y[dev], n_classes=len(labels))
    y_test = [labels[i] for i in y[test]]
    versus: tuple[str | None, Metrics | None, np.ndarray | None] = (None, None, None)
    if champion is not None:
        proba = champion[0].predict_proba(x[test])
        versus = ("1", evaluate_probabilities(y_test, proba, labels), correct(y_test, proba, labels))
    right = cv.logits.argmax(axis=1) == cv.y
    evaluation = judge(cv, calibration, head, x[test], y_test, labels, versus, RULE,
                       champion_cv=(right, champion[1]) if champion is not None else None)
    return evaluation, (head, right)


def test_six_labels_first_model_promoted_and_flipped_refused_under_random_keys(scenes: Scenes) -> None:
    _, y, labels, _ = scenes
    for _ in range(KEYS):
        key, rng = secrets.token_hex(16), np.random.default_rng()
        first, champion = run(scenes, key, y)
        assert first.decision.passed, (key, first.decision.reason)
        assert "trivial baseline" in first.decision.reason and "no champion yet" in first.decision.reason
        flipped = y.copy()
        chosen = rng.choice(len(y), int(0.3 * len(y)), replace=False)
        flipped[chosen] = (flipped[chosen] + rng.integers(1, len(labels), len(chosen))) % len(labels)
        noisy, _ = run(scenes, key, flipped, champion)
        assert not noisy.decision.passed, (key, noisy.decision.reason)
        assert "cross-validated accuracy" in noisy.decision.reason and "95% CI" in noisy.decision.reason


def test_first_models_on_shuffled_labels_pass_no_more_often_than_the_gate_is_designed_to(scenes: Scenes) -> None:
    _, y, _, _ = scenes
    passed, refused = [], []
    for _ in range(SHUFFLES):
        key = secrets.token_hex(16)
        shuffled, _ = run(scenes, key, np.random.default_rng().permutation(y))
        (passed if shuffled.decision.passed else refused).append((key, shuffled.decision.reason))
    assert len(passed) <= MAX_CHANCE_PASSES, passed
    assert all("not clearly better than the trivial baseline" in reason for _, reason in refused), refused
