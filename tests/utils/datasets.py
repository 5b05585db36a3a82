"""Data-set factories: subsets of the shared set, synthetic label sets, mislabeled copies."""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sqlalchemy import select

from db.models import Sample, SampleSource, SampleStatus, Split
from model.data.importer import find_labeled_files
from model.data.samples import add_sample, sha256_of, split_for, split_key
from model.runtime.services import Services
from tests.utils.images import dataset_images
from tests.utils.paths import SCENES


def split_files(root: Path, held_out: int) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(initial, held_out) lists of (label, path), the held-out ones spread over all labels."""
    files = find_labeled_files(root)
    step = max(1, len(files) // held_out)
    kept_out = files[::step][:held_out]
    return [f for f in files if f not in kept_out], kept_out


def write_tree(files: list[tuple[str, Path]], dest: Path) -> Path:
    """Copy (label, path) pairs into a folder-per-label tree at ``dest``."""
    for label, path in files:
        (dest / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / label / path.name)
    return dest


def dataset_tree(root: Path, n: int) -> Path:
    """``root/tree/<label>/``: copies of the first ``n`` shared photos of each label, a tree to import."""
    return write_tree([(label, path) for label in ("dandelion", "grass") for path in dataset_images(label, n)],
                      root / "tree")


def colour_dataset(dest: Path, per_label: int = 24, seed: int = 0) -> Path:
    """A synthetic folder-per-label set whose labels are not dandelion/grass: noisy colour fields."""
    rng = np.random.default_rng(seed)
    colours = {"crimson": (200, 20, 40), "forest": (20, 140, 40), "navy": (20, 30, 160)}
    for label, rgb in colours.items():
        (dest / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            noise = rng.normal(0, 35, size=(96, 128, 3))
            arr = np.clip(np.asarray(rgb, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(dest / label / f"{i:03d}.png")
    return dest


def augmented_copy(data: bytes, variant: int) -> bytes:
    """A visibly identical but byte-different JPEG (mirror and a small crop), for mislabeled copies."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if variant % 2:
        img = ImageOps.mirror(img)
    w, h = img.size
    margin = 2 + variant
    img = img.crop((margin, margin, w - margin, h - margin))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def add_mislabeled_copies(svc: Services) -> int:
    """Approved, visibly identical copies of the training images with the other label, twice as many."""
    added = 0
    with svc.session() as session:
        samples = session.scalars(select(Sample).where(Sample.status == SampleStatus.APPROVED,
                                                       Sample.split == Split.TRAIN)).all()
        wrong = {"dandelion": "grass", "grass": "dandelion"}
        key = split_key(session)
        for sample in samples:
            for variant in range(4):
                data = augmented_copy(svc.store.get(sample.object_key), variant)
                if split_for(sha256_of(data), key=key) is not Split.TRAIN:
                    continue
                _, created = add_sample(session, svc.store, data=data, source=SampleSource.IMPORT,
                                        label=wrong[sample.label or ""])
                added += created
            if added >= 2 * len(samples):
                break
    assert added >= len(samples)
    return added


def consistent_with_accuracy(accuracy: float, n: int, *, target: float = 0.95, floor: float = 0.90) -> bool:
    """Measured ``accuracy`` on ``n`` unseen images is above the gate's floor and not significantly below
    ``target`` (the target lies under the upper end of the 95% Wilson interval). On a few dozen test images
    one image moves the accuracy by 2-4 points, so a bare ``>= target`` would test the split, not the model."""
    z = 1.959964
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return accuracy >= floor and centre + half >= target


def scenes_tree(dest: Path, per_label: dict[str, int]) -> Path:
    """``dest/<label>/``: copies of the first ``per_label[label]`` photos (sorted by name) of each chosen label of
    the shared six-class scenes set (buildings, forest, glacier, mountain, sea, street), a tree to import."""
    files = []
    for label, n in per_label.items():
        photos = sorted((SCENES / label).glob("*.jpg"))[:n]
        assert len(photos) == n, f"the scenes set must have {n} {label} photos in {SCENES}"  # fail, never skip
        files += [(label, path) for path in photos]
    return write_tree(files, dest)
