"""Benchmark: which drift score separates in-domain from out-of-domain traffic better, MMD or a domain classifier?

Embeds every photo of a folder-per-label set with the served backbone (torch, the preprocessing of serving),
takes a seeded 60 % as the "training set" (the reference) and holds the rest back as in-domain traffic. Out of
domain: generated textures (noise, stripes, checkers, blobs, rings), recoloured held-back photos (inverted,
channels rotated, posterised) and a half-and-half mix of textures and held-back photos. For windows of
``--sizes`` predictions it prints each score, its threshold and the ratio (score − null centre) / (threshold −
null centre), 0 where the score expects no drift and 1 at the threshold (centre: AUC 0.5; the permutations'
median MMD²), whether it flags drift, and its time; then per score
the worst in-domain and out-of-domain ratios and their gap (smallest out-of-domain / largest in-domain ratio).
Last, the best cosine of each kind of image to the reference (for ``SPROUT_DRIFT_NOVEL_SIMILARITY``).

    python bench/drift.py [--dataset DIR] [--backbone efficientnet_lite0] [--windows 8] [--sizes 30,100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.core.settings import Settings  # noqa: E402
from model.data.images import load_and_preprocess  # noqa: E402
from model.data.importer import find_labeled_files  # noqa: E402
from model.data.near_duplicates import normalized  # noqa: E402
from model.learning.backbones import load_backbone  # noqa: E402
from model.learning.embeddings import embed_batch  # noqa: E402
from model.monitoring.drift import domain_auc, mmd_test  # noqa: E402
from tests.utils.images import out_of_domain_images, recoloured  # noqa: E402

ALPHA = 0.01


def embed(backbone_name: str, images: list[bytes]) -> np.ndarray:
    """Unit embeddings of encoded images."""
    backbone = load_backbone(backbone_name, Settings())
    vectors = [embed_batch(backbone, np.stack([load_and_preprocess(d, backbone.spec) for d in images[i:i + 32]]))
               for i in range(0, len(images), 32)]
    return normalized(np.concatenate(vectors))


def run(method: str, reference: np.ndarray, live: np.ndarray, seed: int) -> tuple[float, float, float, float]:
    """``(score, threshold, ratio, seconds)``; the ratio is 0 at the centre of the score's null distribution
    (AUC 0.5; the median MMD² over the permutations) and 1 at the threshold."""
    start = time.perf_counter()
    if method == "mmd":
        score, threshold = mmd_test(reference, live, alpha=ALPHA, permutations=200, seed=seed)
        took = time.perf_counter() - start
        _, centre = mmd_test(reference, live, alpha=0.5, permutations=200, seed=seed)
    else:
        score, threshold = domain_auc(reference, live, alpha=ALPHA, seed=seed)
        took, centre = time.perf_counter() - start, 0.5
    return score, threshold, (score - centre) / (threshold - centre), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/dandelion-grass"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--windows", type=int, default=8, help="In-domain windows per size (different draws).")
    parser.add_argument("--sizes", default="30,100", help="Window sizes (predictions).")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    photos = [path.read_bytes() for _, path in find_labeled_files(args.dataset)]
    order = rng.permutation(len(photos))
    n_ref = int(0.6 * len(photos))
    held = [photos[i] for i in order[n_ref:]]
    n_ood = max(sizes)
    textures = out_of_domain_images(n_ood, seed=1)
    recolour = [recoloured(held[i % len(held)], i) for i in range(n_ood)]
    started = time.perf_counter()
    x = embed(args.backbone, [photos[i] for i in order[:n_ref]] + held + textures + recolour)
    print(f"embedded {len(x)} images with {args.backbone} in {time.perf_counter() - started:.0f} s: reference "
          f"{n_ref} photos, {len(held)} held back, {n_ood} textures, {n_ood} recoloured; alpha {ALPHA}")
    reference, x_held = x[:n_ref], x[n_ref:n_ref + len(held)]
    x_tex, x_rec = x[n_ref + len(held):n_ref + len(held) + n_ood], x[n_ref + len(held) + n_ood:]

    windows: list[tuple[str, bool, int, np.ndarray]] = []  # (scenario, out of domain, size, embeddings)
    for size in sizes:
        for w in range(args.windows):
            windows.append((f"held-back #{w}", False, size, x_held[rng.choice(len(x_held), min(size, len(x_held)),
                                                                              replace=False)]))
        windows.append(("textures", True, size, x_tex[:size]))
        windows.append(("recoloured", True, size, x_rec[:size]))
        half = size // 2
        windows.append(("half textures", True, size, np.concatenate([x_tex[:half], x_held[:size - half]])))

    summary: dict[str, dict[str, list[float]]] = {m: {"in": [], "out": [], "t": [], "fp": [], "tp": []}
                                                   for m in ("mmd", "auc")}
    print(f"\n{'window':<16} {'n':>4} | {'MMD²':>8} {'thresh':>8} {'ratio':>7} {'drift':>5} | "
          f"{'AUC':>6} {'thresh':>6} {'ratio':>6} {'drift':>5}")
    for i, (name, ood, size, live) in enumerate(windows):
        cells = []
        for method in ("mmd", "auc"):
            score, threshold, r, took = run(method, reference, live, seed=i)
            s = summary[method]
            s["out" if ood else "in"].append(r)
            s["t"].append(took)
            s["tp" if ood else "fp"].append(float(score > threshold))
            width = (8, 8, 7) if method == "mmd" else (6, 6, 6)
            cells.append(f"{score:>{width[0]}.4f} {threshold:>{width[1]}.4f} {r:>{width[2]}.2f} "
                         f"{'yes' if score > threshold else 'no':>5}")
        print(f"{name:<16} {size:>4} | {cells[0]} | {cells[1]}")

    print("\nseparation (ratio: 0 at the null centre, 1 at the threshold):")
    for method, s in summary.items():
        worst_in, worst_out = max(s["in"]), min(s["out"])
        print(f"  {method.upper():>3}: in-domain ratio ≤ {worst_in:.2f} (median {np.median(s['in']):.2f}), "
              f"out-of-domain ratio ≥ {worst_out:.2f} (median {np.median(s['out']):.1f}), "
              f"gap ×{worst_out / worst_in:.1f}; false alarms {int(sum(s['fp']))}/{len(s['fp'])}, "
              f"detections {int(sum(s['tp']))}/{len(s['tp'])}, "
              f"median time {1000 * np.median(s['t']):.0f} ms")

    print("\nbest cosine to the reference (novel below SPROUT_DRIFT_NOVEL_SIMILARITY):")
    for name, vectors in (("held-back photos", x_held), ("textures", x_tex), ("recoloured", x_rec)):
        best = (vectors @ reference.T).max(axis=1)
        q = np.quantile(best, [0.0, 0.05, 0.5, 0.95, 1.0])
        print(f"  {name:<17} min {q[0]:.3f}  p5 {q[1]:.3f}  median {q[2]:.3f}  p95 {q[3]:.3f}  max {q[4]:.3f}")
    threshold = Settings().drift_novel_similarity
    for name, vectors in (("held-back photos", x_held), ("textures", x_tex), ("recoloured", x_rec)):
        best = (vectors @ reference.T).max(axis=1)
        print(f"  novel at {threshold}: {name:<17} {float(np.mean(best < threshold)):.0%}")


if __name__ == "__main__":
    main()
