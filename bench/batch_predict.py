"""Benchmark: batch scoring with 1, 2, ... worker processes (one ONNX Runtime thread each).

Scores every image of a folder with an exported Sprout ONNX model (``sprout export --output m.onnx``) through
``model.serving.batch.score_paths``, the code behind ``sprout predict --workers N``, and prints images per
second per worker count (best of ``--repeat``; worker start-up included, as a user pays it).

    python bench/batch_predict.py --model m.onnx [--dataset DIR] [--workers 1 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from model.core.settings import Settings
from model.serving.batch import list_images, score_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dataset", default="../shared/datasets/dandelion-grass")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = Settings()
    paths = list_images([args.dataset], settings)
    best: dict[int, float] = {}
    for _ in range(args.repeat):
        for workers in args.workers:
            start = time.perf_counter()
            rows = score_paths(paths, model=args.model, version="bench", settings=settings, workers=workers)
            elapsed = time.perf_counter() - start
            assert len(rows) == len(paths) and not any(r["error"] for r in rows)
            best[workers] = min(best.get(workers, elapsed), elapsed)
    base = best[args.workers[0]]
    for workers, elapsed in best.items():
        print(f"workers={workers}: {len(paths)} images in {elapsed:.1f} s, {len(paths) / elapsed:.1f} img/s, "  # noqa: T201
              f"x{base / elapsed:.2f}")


if __name__ == "__main__":
    main()
