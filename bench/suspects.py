"""Benchmark: are flipped labels found among the top suspects, on any split key? Test split covered vs not.

Embeds every photo of each folder-per-label set once (the backbone's ONNX graph, as training does on a CPU).
Then, per random split key: splits the photos as an installation with that key would (``split_for``), flips
``--flip`` (10%) of all labels, each to another label at random, and runs what a training run does on cached
embeddings: cross-validation over train+val (``cross_validate``: out-of-fold probabilities), the final head on
train+val (``final_head``), the run's record of what judged each sample (``label_evidence``: out-of-fold for
train+val, the final head's out-of-sample probabilities for test) and Cleanlab's ranking (``rank_suspects``).
Per key it prints the number flipped (and in the test split), then the share of flips among the top
2 × (flipped) suspects:

- ``today``: train+val only, cut at the samples Cleanlab's ``find_label_issues`` flags (Sprout before issue 23);
- ``train+val``: train+val only, ranked by label quality (not cut);
- ``all, flagged``: every split, cut at the flagged samples;
- ``all``: every split, ranked by label quality: what ``sprout label-issues`` returns now (goal: ≥ 0.80 on every
  key); ``test``: the share of the test split's flips it finds.

    python bench/suspects.py [--datasets DIR ...] [--keys 8] [--flip 0.1] [--seed 0] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.models import Sample, Split  # noqa: E402
from model.core.settings import Settings  # noqa: E402
from model.data.images import load_and_preprocess  # noqa: E402
from model.data.importer import find_labeled_files  # noqa: E402
from model.data.samples import sha256_of, split_for  # noqa: E402
from model.learning.backbones import load_backbone  # noqa: E402
from model.learning.embeddings import batch_embedder  # noqa: E402
from model.learning.evaluation import cross_validate  # noqa: E402
from model.learning.final_evaluation import final_head  # noqa: E402
from model.learning.label_evidence import label_evidence  # noqa: E402
from model.learning.training_data import TrainingData, development_groups, development_set  # noqa: E402
from model.review.label_issues import rank_suspects  # noqa: E402

DATASETS = (Path("../shared/datasets/scenes"), Path("../shared/datasets/dandelion-grass"))
COLUMNS = ("today", "train+val", "all, flagged", "all")


@dataclass(frozen=True)
class LabelSet:
    """A folder-per-label set embedded once: true label index and content hash per photo."""

    name: str
    labels: list[str]
    y: np.ndarray
    hashes: list[str]
    x: np.ndarray


def embed_set(root: Path, backbone_name: str, settings: Settings) -> LabelSet:
    files = find_labeled_files(root)
    data = [path.read_bytes() for _, path in files]
    backbone = load_backbone(backbone_name, settings)
    embed = batch_embedder(backbone, settings.backbone_graphs_dir)
    x = np.concatenate([embed(np.stack([load_and_preprocess(d, backbone.spec) for d in data[i:i + 32]]))
                        for i in range(0, len(data), 32)])
    labels = sorted({label for label, _ in files})
    return LabelSet(root.name, labels, np.array([labels.index(label) for label, _ in files]),
                    [sha256_of(d) for d in data], x)


def flip_labels(y: np.ndarray, n_labels: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``share`` of the samples, each given another label at random (``y`` is changed in place)."""
    flipped = rng.choice(len(y), round(share * len(y)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_labels, len(flipped))) % n_labels
    return flipped


def found(order: np.ndarray, flagged: np.ndarray | None, rows: np.ndarray, is_flip: np.ndarray, k: int) -> np.ndarray:
    """The sample indices among the top ``k`` of a ranking of ``rows`` (only the flagged ones, when given) that
    were flipped."""
    ranked = order if flagged is None else order[flagged[order]]
    top = rows[ranked[:k]]
    return top[is_flip[top]]


def one_key(s: LabelSet, key: str, share: float, rng: np.random.Generator, seed: int) -> tuple[int, int, list[float],
                                                                                                float | None]:
    """``(flipped, flipped in test, share found per column, share of the test flips found by "all")``."""
    y = s.y.copy()
    flipped = flip_labels(y, len(s.labels), share, rng)
    is_flip = np.zeros(len(y), dtype=bool)
    is_flip[flipped] = True
    samples = [Sample(id=i, sha256=sha, split=split_for(sha, key=key), label=s.labels[y[i]])
               for i, sha in enumerate(s.hashes)]
    data = TrainingData(samples=samples, labels=s.labels, x=s.x, y=y, n_embedded=0,
                        masks={split: np.array([x.split is split for x in samples]) for split in Split})
    x_dev, y_dev = development_set(data)
    cv = cross_validate(x_dev, y_dev, n_classes=len(s.labels), seed=seed, groups=development_groups(data))
    head, calibration = final_head(cv, x_dev, y_dev, n_classes=len(s.labels))
    evidence = label_evidence(data, cv, head, temperature=calibration.temperature)
    rows = np.array(evidence.sample_ids)
    oof = np.flatnonzero(~evidence.out_of_sample)
    k = 2 * len(flipped)
    every = rank_suspects(y[rows], evidence.proba)
    dev_only = rank_suspects(y[rows[oof]], evidence.proba[oof])
    hits = [found(dev_only.order, dev_only.flagged, rows[oof], is_flip, k),
            found(dev_only.order, None, rows[oof], is_flip, k),
            found(every.order, every.flagged, rows, is_flip, k),
            found(every.order, None, rows, is_flip, k)]
    in_test = is_flip & data.masks[Split.TEST]
    test_found = int(in_test[hits[-1]].sum())
    return (len(flipped), int(in_test.sum()), [len(h) / len(flipped) for h in hits],
            test_found / int(in_test.sum()) if in_test.any() else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, nargs="+", default=list(DATASETS))
    parser.add_argument("--keys", type=int, default=8, help="random split keys per set")
    parser.add_argument("--flip", type=float, default=0.1, help="share of all labels flipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    settings = Settings()
    rng = np.random.default_rng(args.seed)
    keys = [rng.bytes(8).hex() for _ in range(args.keys)]
    print(f"{args.flip:.0%} of the labels flipped; share of the flips among the top 2 × (flipped) suspects")
    for root in args.datasets:
        started = time.perf_counter()
        s = embed_set(root, args.backbone, settings)
        print(f"\n{s.name}: {len(s.y)} photos, {len(s.labels)} labels, embedded with {args.backbone} in "
              f"{time.perf_counter() - started:.0f} s")
        print(f"{'split key':18} {'flipped':>7} {'in test':>7}" + "".join(f"{c:>13}" for c in COLUMNS)
              + f"{'test':>7}")
        shares, test_shares = [], []
        for key in keys:
            n, n_test, share, test_share = one_key(s, key, args.flip, rng, settings.seed)
            shares.append(share)
            test_shares += [] if test_share is None else [test_share]
            test_text = "–" if test_share is None else f"{test_share:.2f}"
            print(f"{key:18} {n:>7} {n_test:>7}" + "".join(f"{v:>13.2f}" for v in share) + f"{test_text:>7}")
        table = np.array(shares)
        tests = np.array(test_shares or [np.nan])
        for what, values, test in (("mean", table.mean(axis=0), tests.mean()), ("min", table.min(axis=0), tests.min())):
            print(f"{what:18} {'':>7} {'':>7}" + "".join(f"{v:>13.2f}" for v in values) + f"{test:>7.2f}")


if __name__ == "__main__":
    main()
