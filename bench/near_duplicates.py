"""Benchmark: which near-duplicate rule? Copies caught vs false pairs among different photos, and search cost.

Embeds every photo of a folder-per-label set with the served backbone (torch, the same preprocessing as
serving) and hashes it (pHash of the same decode as intake), then makes a re-encoded, resized and
10%-cropped copy of every 4th photo. For a grid of (cosine ≥ c, pHash distance ≤ d) it prints how many
copies match their original and how many pairs of *different* photos would match (the false pairs).
Last, the latency of the exact (numpy) search the index runs, at growing index sizes.

    python bench/near_duplicates.py [--dataset DIR] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.core.settings import Settings  # noqa: E402
from model.data.images import decode_image, load_and_preprocess  # noqa: E402
from model.data.importer import find_labeled_files  # noqa: E402
from model.data.near_duplicates import EmbeddingIndex, normalized, phash_distance, phash_of  # noqa: E402
from model.learning.backbones import load_backbone  # noqa: E402
from model.learning.embeddings import embed_batch  # noqa: E402
from tests.utils.images import near_copy  # noqa: E402

COSINES = (0.70, 0.75, 0.80, 0.85, 0.90)
# (crop of each side, scale, JPEG quality): the copies a re-upload of a photo plausibly is
VARIANTS = ((0.10, 0.8, 75), (0.10, 1.5, 75), (0.10, 0.6, 70))
DISTANCES = (12, 14, 16, 18, 20, 22, 64)


def describe(backbone_name: str, images: list[bytes]) -> tuple[np.ndarray, list[str]]:
    """Unit embeddings and pHashes of encoded images."""
    backbone = load_backbone(backbone_name, Settings())
    vectors = [embed_batch(backbone, np.stack([load_and_preprocess(d, backbone.spec) for d in images[i:i + 32]]))
               for i in range(0, len(images), 32)]
    hashes = [phash_of(decode_image(d, min_side=256)) for d in images]
    return normalized(np.concatenate(vectors)), hashes


def search_latency() -> None:
    """Median time of one exact top-k search of a 1280-d vector, by index size."""
    rng = np.random.default_rng(0)
    print("\nexact search (numpy), one query, 1280-d float32:")
    for n in (1_000, 10_000, 50_000, 100_000):
        index = EmbeddingIndex("bench")
        index._matrix = normalized(rng.random((n, 1280), dtype=np.float32))  # noqa: SLF001 (bench only)
        index._sample_ids = np.arange(n)  # noqa: SLF001
        query = rng.random(1280, dtype=np.float32)
        times = []
        for _ in range(20):
            start = time.perf_counter()
            index.nearest(query, k=20, min_similarity=0.75)
            times.append(time.perf_counter() - start)
        print(f"  {n:>7} samples: {1000 * float(np.median(times)):7.2f} ms  ({n * 1280 * 4 / 1e6:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/dandelion-grass"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    files = find_labeled_files(args.dataset)
    originals = [path.read_bytes() for _, path in files]
    every_4th = list(range(0, len(originals), 4))
    copied = [i for _ in VARIANTS for i in every_4th]
    variant_of = np.repeat(np.arange(len(VARIANTS)), len(every_4th))
    copies = [near_copy(originals[i], crop=crop, scale=scale, quality=q)
              for crop, scale, q in VARIANTS for i in every_4th]
    x, hashes = describe(args.backbone, originals + copies)
    n = len(originals)
    xo, ho, xc, hc = x[:n], hashes[:n], x[n:], hashes[n:]
    sims = xo @ xo.T
    iu = np.triu_indices(n, k=1)
    pair_sims = sims[iu]
    pair_dist = np.array([phash_distance(ho[i], ho[j]) for i, j in zip(*iu, strict=True)])
    copy_sims = np.array([float(xc[k] @ xo[i]) for k, i in enumerate(copied)])
    copy_dist = np.array([phash_distance(hc[k], ho[i]) for k, i in enumerate(copied)])
    print(f"{n} photos, {len(copies)} copies of {len(every_4th)} of them, {len(pair_sims)} pairs of different photos")
    for v, (crop, scale, q) in enumerate(VARIANTS):
        mine = variant_of == v
        print(f"  copies {crop:.0%} cropped, resized ×{scale}, JPEG q{q}: cosine {copy_sims[mine].min():.3f}–"
              f"{copy_sims[mine].max():.3f}, pHash distance {copy_dist[mine].min()}–{copy_dist[mine].max()}")
    print(f"  different photos: cosine up to {pair_sims.max():.3f}, pHash distance down to {pair_dist.min()}")
    print(f"\n{'cosine ≥':>9} {'pHash ≤':>8} {'copies caught':>14} {'false pairs':>12} {'false-pair rate':>16}")
    for c in COSINES:
        for d in DISTANCES:
            caught = int(((copy_sims >= c) & (copy_dist <= d)).sum())
            false = int(((pair_sims >= c) & (pair_dist <= d)).sum())
            label = "any" if d == 64 else str(d)
            print(f"{c:>9.2f} {label:>8} {caught:>8}/{len(copies):<5} {false:>12} {false / len(pair_sims):>16.2e}")
    settings = Settings()
    c, d = settings.near_dup_threshold, settings.near_dup_max_hash_distance
    caught = int(((copy_sims >= c) & (copy_dist <= d)).sum())
    false = int(((pair_sims >= c) & (pair_dist <= d)).sum())
    print(f"\ndefault rule (SPROUT_NEAR_DUP_THRESHOLD={c}, SPROUT_NEAR_DUP_MAX_HASH_DISTANCE={d}): "
          f"{caught}/{len(copies)} copies caught, {false} false pairs of {len(pair_sims)} "
          f"(false-pair rate {false / len(pair_sims):.2e})")
    for v, (crop, scale, q) in enumerate(VARIANTS):
        mine = variant_of == v
        hit = int(((copy_sims[mine] >= c) & (copy_dist[mine] <= d)).sum())
        print(f"  {crop:.0%} cropped, ×{scale}, q{q}: {hit}/{int(mine.sum())}")
    search_latency()


if __name__ == "__main__":
    main()
