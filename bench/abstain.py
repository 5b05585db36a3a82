"""Benchmark: abstain and unfamiliar, on held-back photos of the training set and on photos of another label set.

Every photo of both sets is embedded once per candidate backbone (the pipeline's ONNX Runtime embedder). Per
random split key and direction (train on A, foreign = B, and the reverse), a stratified 20% of A is held back
(photos the model never sees: new uploads), the rest split by the key into train+val and test as Sprout splits
them; each backbone is cross-validated and the lowest cross-validated log loss wins (the pipeline's rule); its
final head, temperature, abstain thresholds and unfamiliarity centroids are fitted by the pipeline's own
functions. It prints, per key and pooled over the keys:

- the coverage (share not abstained) on the out-of-fold predictions and on the held-back photos, and the precision
  of the held-back predictions that did not abstain, with its 95% Wilson interval, against the target;
- the share of held-back photos flagged unfamiliar (goal: at most 5%) and of the other set's photos (goal: 90%);
- the same shares for the k-th-nearest-neighbour distance (k = 10) at the same in-domain rate, the alternative;
- the coverage and precision for other precision targets (what the default was chosen from).

The first key's model is also exported as the served ONNX graph and run on its held-back and foreign photos: its
flags must equal the ones computed here on the embeddings.

    python bench/abstain.py [--a ../shared/datasets/scenes] [--b ../shared/datasets/dandelion-grass] [--keys 10]
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.models import Split  # noqa: E402
from model.core.settings import Settings  # noqa: E402
from model.data.images import load_and_preprocess  # noqa: E402
from model.data.importer import find_labeled_files  # noqa: E402
from model.data.samples import split_for  # noqa: E402
from model.learning.abstain import fit_abstain_rule  # noqa: E402
from model.learning.evaluation import cross_validate, cv_log_loss, wilson_interval  # noqa: E402
from model.learning.familiarity import fit_familiarity, unfamiliarity, unit  # noqa: E402
from model.learning.final_evaluation import final_head  # noqa: E402
from model.learning.training import Head, softmax  # noqa: E402
from model.serving.guards import AbstainRule, Guards  # noqa: E402

TARGETS = (0.90, 0.95, 0.98)
KNN = 10


@dataclass
class LabelSet:
    """Every photo of a folder-per-label set: bytes, labels, hashes and one embedding matrix per backbone."""

    name: str
    labels: list[str]
    y: np.ndarray
    hashes: list[str]
    data: list[bytes]
    x: dict[str, np.ndarray]


def load(root: Path, backbones: list[str], settings: Settings) -> LabelSet:
    from model.learning.backbones import load_backbone
    from model.learning.embeddings import batch_embedder

    files = find_labeled_files(root)
    labels = sorted({label for label, _ in files})
    data = [path.read_bytes() for _, path in files]
    x = {}
    for name in backbones:
        backbone = load_backbone(name, settings)
        embed = batch_embedder(backbone, settings.backbone_graphs_dir)
        x[name] = np.concatenate([embed(np.stack([load_and_preprocess(d, backbone.spec) for d in data[i:i + 32]]))
                                  for i in range(0, len(data), 32)])
    return LabelSet(root.name, labels, np.array([labels.index(label) for label, _ in files]),
                    [hashlib.sha256(d).hexdigest() for d in data], data, x)


@dataclass
class Trial:
    """One key's model and what it said about held-back and foreign photos."""

    backbone: str
    guards: Guards
    head: Head
    reference: np.ndarray
    oof: dict[float, AbstainRule]  # the rule fitted for each target
    kept: np.ndarray  # held-back photos not abstained (default target)
    right: np.ndarray  # held-back predictions that are right
    unfamiliar_in: np.ndarray
    unfamiliar_out: np.ndarray
    knn_in: float
    knn_out: float
    held_precision: dict[float, tuple[int, int]]  # target → (right among kept, kept) on held-back photos


def trial(a: LabelSet, b: LabelSet, key: str, seed: int, settings: Settings) -> tuple[Trial, np.ndarray]:
    """Train on ``a`` under ``key`` without its held-back 20% (stratified); returns the trial and that mask."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(a.y))
    _, back = train_test_split(index, test_size=0.2, stratify=a.y, random_state=seed)
    held = np.zeros(len(a.y), dtype=bool)
    held[back] = True
    test = np.array([split_for(h, key=key) is Split.TEST for h in a.hashes]) & ~held
    dev = ~held & ~test
    n_classes = len(a.labels)
    cvs = {name: cross_validate(x[dev], a.y[dev], n_classes=n_classes, seed=settings.seed)
           for name, x in a.x.items()}
    name = min(cvs, key=lambda n: cv_log_loss(cvs[n]))  # the pipeline's rule: lowest cross-validated log loss
    cv, x = cvs[name], a.x[name]
    head, calibration = final_head(cv, x[dev], a.y[dev], n_classes=n_classes)
    oof_proba = softmax(cv.logits / calibration.temperature)
    rules = {t: fit_abstain_rule(oof_proba, cv.y, a.labels, target=t) for t in (*TARGETS, settings.abstain_precision)}
    familiarity = fit_familiarity(x[dev], a.y[dev], cv.fold_of, x[test], rate=settings.unfamiliar_rate)
    rule = rules[settings.abstain_precision]
    proba = head.predict_proba(x[held])
    predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    right = predicted == a.y[held]
    held_precision = {}
    for target, r in rules.items():
        kept = np.array([not r.abstains(a.labels[p], c) for p, c in zip(predicted, confidence, strict=True)])
        held_precision[target] = (int(right[kept].sum()), int(kept.sum()))
    kept = np.array([not rule.abstains(a.labels[p], c) for p, c in zip(predicted, confidence, strict=True)])
    threshold = familiarity.rule.threshold
    knn_in, knn_out = knn_shares(x, dev, test, held, cv.fold_of, b.x[name], settings.unfamiliar_rate)
    return Trial(name, Guards(rule, familiarity.rule), head, familiarity.reference, rules, kept, right,
                 unfamiliarity(x[held], familiarity.reference) > threshold,
                 unfamiliarity(b.x[name], familiarity.reference) > threshold, knn_in, knn_out, held_precision), held


def knn_shares(x: np.ndarray, dev: np.ndarray, test: np.ndarray, held: np.ndarray,
               fold_of: np.ndarray, foreign: np.ndarray, rate: float) -> tuple[float, float]:
    """The alternative score, the cosine distance to the k-th nearest train+val embedding, with its threshold
    fitted the same way (other folds, and the test split): the shares of held-back and foreign photos flagged."""
    def kth(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
        k = min(KNN, len(reference))
        return 1.0 - np.sort(unit(queries) @ unit(reference).T, axis=1)[:, -k]

    xd = x[dev]
    held_out = [kth(xd[fold_of == f], xd[fold_of != f]) for f in np.unique(fold_of)] + [kth(x[test], xd)]
    threshold = np.quantile(np.concatenate(held_out), 1 - rate)
    return float((kth(x[held], xd) > threshold).mean()), float((kth(foreign, xd) > threshold).mean())


def served_flags_match(a: LabelSet, b: LabelSet, result: Trial, held: np.ndarray, settings: Settings) -> str:
    """Export the trial's model as the served graph and compare its flags with the embeddings' on the photos."""
    from model.learning.backbones import load_backbone
    from model.learning.onnx_export import build_classifier
    from model.serving.predictor import Predictor

    backbone = load_backbone(result.backbone, settings)
    model = build_classifier(backbone, weight=result.head.weight, bias=result.head.bias, labels=a.labels,
                             graphs_dir=settings.backbone_graphs_dir, metadata=result.guards.metadata(),
                             reference=result.reference)
    predictor = Predictor.load(model.SerializeToString(), threads=2)
    photos = [d for d, h in zip(a.data, held, strict=True) if h] + b.data
    answers = predictor.predict_many(photos)
    n_held = int(held.sum())
    expected_unfamiliar = np.concatenate([result.unfamiliar_in, result.unfamiliar_out])
    got_unfamiliar = np.array([r.unfamiliar for r in answers])
    got_abstained = np.array([r.abstained for r in answers[:n_held]])
    same = int((got_unfamiliar == expected_unfamiliar).sum()) + int((got_abstained == ~result.kept).sum())
    return f"served graph: {same}/{len(answers) + n_held} flags equal the embeddings' ({len(photos)} photos)"


def pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def run_direction(a: LabelSet, b: LabelSet, keys: int, settings: Settings, check_served: bool) -> None:
    target = settings.abstain_precision
    print(f"\n== train on {a.name} ({len(a.labels)} labels, {len(a.y)} photos, 20% held back), "
          f"foreign = {b.name} ({len(b.y)} photos); target precision {target}, unfamiliar rate "
          f"{settings.unfamiliar_rate}")
    print(f"{'key':>3} {'backbone':>18} {'cov oof':>8} {'cov held':>8} {'prec held (95% CI)':>24} "
          f"{'unfam in':>8} {'unfam foreign':>13} {'kNN in':>7} {'kNN foreign':>11}")
    trials = []
    for k in range(keys):
        result, held = trial(a, b, secrets.token_hex(16), k, settings)
        trials.append(result)
        kept_right, kept = result.held_precision[target]
        ci = wilson_interval(kept_right, kept)
        prec = f"{kept_right / kept:.3f} ({ci[0]:.3f}–{ci[1]:.3f})" if ci and kept else "—"
        print(f"{k:>3} {result.backbone:>18} {pct(result.oof[target].coverage):>8} {pct(result.kept.mean()):>8} "
              f"{prec:>24} {pct(result.unfamiliar_in.mean()):>8} {pct(result.unfamiliar_out.mean()):>13} "
              f"{pct(result.knn_in):>7} {pct(result.knn_out):>11}")
        if check_served and k == 0:
            print("    " + served_flags_match(a, b, result, held, settings))
    unfamiliar_in = np.concatenate([t.unfamiliar_in for t in trials])
    unfamiliar_out = np.concatenate([t.unfamiliar_out for t in trials])
    print(f"pooled over {keys} keys: held-back photos flagged unfamiliar {pct(unfamiliar_in.mean())} "
          f"(goal ≤ 5%; worst key {pct(max(t.unfamiliar_in.mean() for t in trials))}), {b.name} photos flagged "
          f"{pct(unfamiliar_out.mean())} (goal ≥ 90%; worst key {pct(min(t.unfamiliar_out.mean() for t in trials))}); "
          f"k-th nearest (k={KNN}) instead: {pct(float(np.mean([t.knn_in for t in trials])))} and "
          f"{pct(float(np.mean([t.knn_out for t in trials])))}")
    by_label = np.mean([t.unfamiliar_out for t in trials], axis=0)
    print(f"{b.name} photos flagged per label: " + ", ".join(
        f"{label} {pct(float(by_label[b.y == i].mean())).strip()}" for i, label in enumerate(b.labels)))
    for t in sorted({*TARGETS, target}):
        right = sum(tr.held_precision[t][0] for tr in trials)
        kept = sum(tr.held_precision[t][1] for tr in trials)
        n = sum(len(tr.kept) for tr in trials)
        ci = wilson_interval(right, kept)
        oof = float(np.mean([tr.oof[t].coverage for tr in trials]))
        meets = "meets" if ci and ci[1] >= t else "misses"
        print(f"target {t:.2f}: coverage {pct(oof)} out-of-fold, {pct(kept / n)} held back; precision of the "
              f"kept held-back predictions {right}/{kept} = {right / max(kept, 1):.3f} (95% CI "
              f"{ci[0]:.3f}–{ci[1]:.3f}: {meets} the target)" if ci else f"target {t:.2f}: nothing kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, default=Path("../shared/datasets/scenes"))
    parser.add_argument("--b", type=Path, default=Path("../shared/datasets/dandelion-grass"))
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--backbones", default=None, help="comma-separated (default: SPROUT_CANDIDATE_BACKBONES)")
    parser.add_argument("--no-served-check", action="store_true")
    args = parser.parse_args()
    settings = Settings(device="cpu")
    backbones = args.backbones.split(",") if args.backbones else settings.candidate_backbone_names
    start = time.perf_counter()
    a, b = load(args.a, backbones, settings), load(args.b, backbones, settings)
    print(f"embedded {len(a.y)} + {len(b.y)} photos with {', '.join(backbones)} in {time.perf_counter() - start:.0f} s")
    run_direction(a, b, args.keys, settings, not args.no_served_check)
    run_direction(b, a, args.keys, settings, not args.no_served_check)


if __name__ == "__main__":
    main()
