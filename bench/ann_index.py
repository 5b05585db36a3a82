"""Benchmark: exact cosine search (numpy) against FAISS's IVF index, per index size — where the switch pays.

The near-duplicate check and the novelty score search the cached embeddings of one backbone for the nearest rows
of a new image. Vectors are clustered like embeddings (a few hundred directions plus noise, 1280 dimensions as
efficientnet_lite0). Per N it prints the build time, one query's p50 for each method, the memory each holds and
the recall of ivf's top 5 against the exact top 5, and the exact/ivf query ratio.

    python bench/ann_index.py [--sizes 1000,10000,100000] [--dim 1280] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from model.data.vector_index import APPROXIMATE_FROM, VectorIndex, normalized


def clustered(n: int, dim: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """``n`` unit vectors around random centres (as embeddings of photos cluster by subject)."""
    picks = rng.integers(0, len(centres), size=n)
    return normalized(centres[picks] + 0.35 * rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim) * 8)


def p50_ms(index: VectorIndex, queries: np.ndarray) -> float:
    """Median milliseconds of one query for the 20 nearest rows."""
    times = []
    for q in queries:
        start = time.perf_counter()
        index.nearest(q, k=20)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = normalized(rng.standard_normal((300, args.dim), dtype=np.float32))
    table = Table(title=f"Nearest 5 of one query, dim {args.dim}")
    for column in ("N", "build s", "exact p50 ms", "ivf p50 ms", "exact/ivf", "exact MB", "ivf MB",
                   "recall@5"):
        table.add_column(column, justify="right")
    for n in (int(s) for s in args.sizes.split(",")):
        data = clustered(n, args.dim, rng, centres)
        queries = clustered(args.queries, args.dim, rng, centres)
        exact = VectorIndex(args.dim, approximate_from=n + 1)
        ann = VectorIndex(args.dim, approximate_from=0, cells=int(4 * np.sqrt(min(n, APPROXIMATE_FROM))))
        ids = np.arange(n, dtype=np.int64)
        exact.add(ids, data)
        start = time.perf_counter()
        ann.add(ids, data)
        built = time.perf_counter() - start
        truth = [{i for i, _ in exact.nearest(q, k=5)} for q in queries]
        found = [{i for i, _ in ann.nearest(q, k=5)} for q in queries]
        recall = sum(len(t & f) for t, f in zip(truth, found, strict=True)) / (5 * len(queries))
        e_ms, a_ms = p50_ms(exact, queries), p50_ms(ann, queries)
        table.add_row(f"{n:,}", f"{built:.1f}", f"{e_ms:.2f}", f"{a_ms:.2f}", f"{e_ms / a_ms:.1f}",
                      f"{exact.memory_bytes() / 2**20:.0f}", f"{ann.memory_bytes() / 2**20:.0f}", f"{recall:.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
