"""Benchmark: batch scoring with 1, 2, ... worker processes (one ONNX Runtime thread each).

Scores the images of a folder (``--copies`` times over, to amortise the workers' start-up) with an exported
Sprout ONNX model (``sprout export --output m.onnx``) through ``model.serving.batch.score_paths``, the code
behind ``sprout predict --workers N``, and prints per worker count the best wall time of ``--repeat`` (worker
start-up included, as a user pays it), images per second, the speed-up over the first count, and the CPU
seconds used (this process and its workers: on a shared machine the wall time also measures the neighbours).

    python bench/batch_predict.py --model m.onnx [--dataset DIR] [--workers 1 2] [--copies 3] [--repeat 2]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from model.core.settings import Settings
from model.serving.batch import list_images, score_paths


def _cpu_seconds() -> float:
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dataset", default="../shared/datasets/dandelion-grass")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = Settings()
    paths = list_images([args.dataset], settings) * args.copies
    best: dict[int, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for workers in args.workers:
            start, cpu = time.perf_counter(), _cpu_seconds()
            rows = score_paths(paths, model=args.model, version="bench", settings=settings, workers=workers)
            elapsed, used = time.perf_counter() - start, _cpu_seconds() - cpu
            assert len(rows) == len(paths) and not any(r["error"] for r in rows)
            if workers not in best or elapsed < best[workers][0]:
                best[workers] = (elapsed, used)
    base = best[args.workers[0]][0]
    for workers, (elapsed, used) in best.items():
        print(f"workers={workers}: {len(paths)} images in {elapsed:.1f} s, {len(paths) / elapsed:.1f} img/s, "  # noqa: T201
              f"x{base / elapsed:.2f}; {used:.1f} CPU s")


if __name__ == "__main__":
    main()
