"""Benchmark: which backbone? 5-fold cross-validated accuracy of the trained head, and embedding speed.

Embeds every image of a folder-per-label set with each backbone (torch, frozen, batch 32, the same
preprocessing as training), then trains Sprout's head on 4/5 and scores the held-out 1/5, five times.

    python bench/backbones.py [--dataset DIR] [--backbones efficientnet_lite0 efficientnet_lite1 ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from model.core.settings import Settings
from model.data.images import load_and_preprocess
from model.data.importer import find_labeled_files
from model.learning.backbones import load_backbone
from model.learning.embeddings import embed_batch
from model.learning.training import train_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/dandelion-grass"))
    parser.add_argument("--backbones", nargs="+",
                        default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    args = parser.parse_args()
    files = find_labeled_files(args.dataset)
    labels = sorted({label for label, _ in files})
    y = np.array([labels.index(label) for label, _ in files])
    data = [path.read_bytes() for _, path in files]
    settings = Settings()
    print(f"{len(files)} images, labels {labels}")
    print(f"{'backbone':20} {'img/s':>7} {'accuracy (5-fold)':>18} {'log loss':>9}")
    for name in args.backbones:
        backbone = load_backbone(name, settings)
        start = time.perf_counter()
        chunks = [embed_batch(backbone, np.stack([load_and_preprocess(d, backbone.spec) for d in data[i:i + 32]]))
                  for i in range(0, len(data), 32)]
        rate = len(data) / (time.perf_counter() - start)
        x = np.concatenate(chunks)
        accs, losses = [], []
        for train_idx, test_idx in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
            head = train_head(x[train_idx], y[train_idx], x[:0], y[:0], n_classes=len(labels))
            proba = head.predict_proba(x[test_idx])
            accs.append(float((proba.argmax(1) == y[test_idx]).mean()))
            losses.append(float(-np.log(np.clip(proba[np.arange(len(test_idx)), y[test_idx]], 1e-7, 1)).mean()))
        print(f"{name:20} {rate:7.1f} {np.mean(accs):11.3f} ± {np.std(accs):.3f} {np.mean(losses):9.3f}")


if __name__ == "__main__":
    main()
