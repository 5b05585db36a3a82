"""Benchmark: the gate on any label set, over random split keys (the pipeline's own functions on embeddings of
every photo, embedded once with one backbone; the default rule: no absolute floor).

Per split key it prints:
- the first model (no champion): cross-validated accuracy with its interval, the trivial baseline, test accuracy
  and the gate's decision;
- a candidate trained once that champion exists, with 30% of the labels flipped to another label (of every
  sample, test ones included: the champion is graded on the same noisy test labels) and again with the flips
  in train+val only (the test labels honest): the decision and the evidence that refused it;
- a first model trained on labels shuffled at random (no signal): the decision.

    python bench/gate_label_sets.py [--dataset ../shared/datasets/scenes] [--keys 10] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import secrets
import time
from pathlib import Path

import numpy as np

from db.models import Split
from model.core.settings import Settings
from model.data.images import load_and_preprocess
from model.data.importer import find_labeled_files
from model.data.samples import split_for
from model.learning.evaluation import correct, cross_validate, evaluate_probabilities
from model.learning.final_evaluation import Evaluation, final_head, judge
from model.learning.gate import GateRule
from model.learning.training import Head


def embed(dataset: Path, backbone_name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Embeddings, label indices, label names and content hashes of every photo of a folder-per-label set."""
    import hashlib

    from model.learning.backbones import load_backbone
    from model.learning.embeddings import embed_batch

    files = find_labeled_files(dataset)
    labels = sorted({label for label, _ in files})
    data = [path.read_bytes() for _, path in files]
    backbone = load_backbone(backbone_name, Settings(device="cpu"))
    x = np.concatenate([embed_batch(backbone, np.stack([load_and_preprocess(d, backbone.spec) for d in data[i:i + 32]]))
                        for i in range(0, len(data), 32)])
    return (x, np.array([labels.index(label) for label, _ in files]), labels,
            [hashlib.sha256(d).hexdigest() for d in data])


class Runs:
    """Sprout runs on one embedded set under one split key."""

    def __init__(self, x: np.ndarray, y: np.ndarray, labels: list[str], hashes: list[str], key: str,
                 rule: GateRule) -> None:
        self.x, self.y, self.labels, self.rule = x, y, labels, rule
        split = np.array([split_for(sha, key=key) for sha in hashes])
        self.dev, self.test = split != Split.TEST, split == Split.TEST

    def run(self, y: np.ndarray, champion: tuple[Head, np.ndarray] | None = None
            ) -> tuple[Evaluation, Head, np.ndarray]:
        """A run on labels ``y`` against ``champion`` (its head and its run's out-of-fold correctness on the same
        train+val samples: the same key); returns the evaluation, the head and this run's out-of-fold correctness."""
        x, k = self.x, len(self.labels)
        cv = cross_validate(x[self.dev], y[self.dev], n_classes=k, seed=0)
        head, calibration = final_head(cv, x[self.dev], y[self.dev], n_classes=k)
        y_test = [self.labels[i] for i in y[self.test]]
        versus: tuple = (None, None, None)
        right = cv.logits.argmax(axis=1) == cv.y
        if champion is not None:
            proba = champion[0].predict_proba(x[self.test])
            versus = ("1", evaluate_probabilities(y_test, proba, self.labels), correct(y_test, proba, self.labels))
        evaluation = judge(cv, calibration, head, x[self.test], y_test, self.labels, versus, self.rule,
                           champion_cv=(right, champion[1]) if champion is not None else None)
        return evaluation, head, right


def flipped(y: np.ndarray, share: float, n_labels: int, rng: np.random.Generator, where: np.ndarray) -> np.ndarray:
    """``y`` with ``share`` of the samples in ``where`` moved to another label at random."""
    out = y.copy()
    chosen = rng.choice(np.flatnonzero(where), int(round(share * where.sum())), replace=False)
    out[chosen] = (out[chosen] + rng.integers(1, n_labels, len(chosen))) % n_labels
    return out


def verdict(evaluation: Evaluation) -> str:
    return "promoted" if evaluation.decision.passed else "refused"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scenes"))
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--reasons", action="store_true", help="print every decision's reason")
    args = parser.parse_args()
    rule = GateRule.from_settings(Settings())
    start = time.perf_counter()
    x, y, labels, hashes = embed(args.dataset, args.backbone)
    print(f"{args.dataset}: {len(y)} photos, {len(labels)} labels, embedded with {args.backbone} in "
          f"{time.perf_counter() - start:.0f} s; rule {rule.to_dict()}")
    print(f"{'key':>4} {'n_cv':>4} {'n_test':>6} {'first: cv (95% CI)':>24} {'base':>5} {'test':>5} {'first':>9}"
          f" {'flip30 all':>11} {'flip30 dev':>11} {'shuffled':>9}")
    tally = {"first": 0, "flip_all": 0, "flip_dev": 0, "shuffled": 0}
    for trial in range(args.keys):
        key, rng = secrets.token_hex(16), np.random.default_rng(trial)
        runs = Runs(x, y, labels, hashes, key, rule)
        first, head, right = runs.run(y)
        evidence = first.decision.evidence
        assert evidence is not None and evidence.cv_accuracy_ci is not None and evidence.baseline is not None
        champion, n_cv = (head, right), evidence.n_cv
        every = np.ones(len(y), dtype=bool)
        flip_all, *_ = runs.run(flipped(y, 0.3, len(labels), rng, every), champion)
        flip_dev, *_ = runs.run(flipped(y, 0.3, len(labels), rng, runs.dev), champion)
        shuffled, *_ = runs.run(rng.permutation(y))
        tally["first"] += first.decision.passed
        tally["flip_all"] += not flip_all.decision.passed
        tally["flip_dev"] += not flip_dev.decision.passed
        tally["shuffled"] += not shuffled.decision.passed
        ci = evidence.cv_accuracy_ci
        print(f"{trial:>4} {n_cv:>4} {evidence.n_test:>6} {evidence.cv_accuracy:>9.3f} ({ci[0]:.3f}–{ci[1]:.3f})"
              f" {evidence.baseline.share:>5.3f} {evidence.test_accuracy or 0:>5.3f} {verdict(first):>9}"
              f" {verdict(flip_all):>11} {verdict(flip_dev):>11} {verdict(shuffled):>9}")
        if args.reasons:
            for name, evaluation in (("first", first), ("flip30 all", flip_all), ("flip30 dev", flip_dev),
                                     ("shuffled", shuffled)):
                print(f"       {name}: {evaluation.decision.reason}")
    n = args.keys
    print(f"first model promoted {tally['first']}/{n}; 30%-flipped candidate refused {tally['flip_all']}/{n} "
          f"(flips everywhere), {tally['flip_dev']}/{n} (flips in train+val); shuffled labels refused "
          f"{tally['shuffled']}/{n}")


if __name__ == "__main__":
    main()
