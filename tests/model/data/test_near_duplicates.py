"""Near duplicates (model/data/near_duplicates.py): the index, synced from the database, so every worker (and a
restarted one) sees every sample; the perceptual hash; and `sprout dedup`: near-duplicate groups and cross-split
leaks in existing data (imports have no intake check)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from db import queries
from db.models import SampleSource
from model.core.settings import Settings
from model.data.near_duplicates import NearDuplicateFinder, NearDuplicateRule, dedup_report, phash_distance, phash_of
from model.data.samples import Prediction, add_sample, split_for
from model.learning.backbones import load_backbone
from model.learning.embeddings import ImageRef, embed_images
from tests.utils.images import dataset_images, near_copy, random_image_bytes
from tests.utils.paths import REPO_ROOT
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

RULE = NearDuplicateRule(min_similarity=0.70, max_hash_distance=18)


def prediction(vector: np.ndarray) -> Prediction:
    return Prediction("grass", 0.6, "1", embedding=vector.astype(np.float32), backbone="efficientnet_lite0")


def test_a_sample_one_worker_adds_is_found_by_another_and_after_a_restart(tmp_path: Path) -> None:
    svc = migrated_services(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    try:
        rng = np.random.default_rng(0)
        worker_a, worker_b = NearDuplicateFinder(RULE), NearDuplicateFinder(RULE)
        photo, other = (p.read_bytes() for p in dataset_images("grass", 2))
        vector = rng.random(1280)
        with svc.session() as session:
            assert add_sample(session, svc.store, data=other, source=SampleSource.UPLOAD,
                              prediction=prediction(rng.random(1280)), near_duplicates=worker_a)[1]
            first, _ = add_sample(session, svc.store, data=photo, source=SampleSource.UPLOAD,
                                  prediction=prediction(vector), near_duplicates=worker_a)
            copy, created = add_sample(session, svc.store, data=near_copy(photo), source=SampleSource.UPLOAD,
                                       prediction=prediction(vector + 0.01 * rng.random(1280)),
                                       near_duplicates=worker_b)  # worker B never saw the first upload
            assert created and copy.near_duplicates and copy.near_duplicates[0]["id"] == first.id
            assert copy.duplicate_group == first.id and copy.split is first.split
            assert phash_distance(copy.phash or "", first.phash or "") <= RULE.max_hash_distance
            restarted = NearDuplicateFinder(RULE)
            found = restarted.find(session, backbone="efficientnet_lite0", embedding=vector, phash=first.phash or "")
            assert [m.id for m in found] == [first.id, copy.id]
            assert len(restarted.index("efficientnet_lite0")) == 3
            # Same embedding, a different picture (pHash far off): not a near-duplicate.
            assert not restarted.find(session, backbone="efficientnet_lite0", embedding=vector,
                                      phash=f"{int(first.phash or '0', 16) ^ (2**64 - 1):016x}")
    finally:
        svc.close()


def test_an_embedding_committed_late_below_the_newest_id_is_still_indexed(tmp_path: Path) -> None:
    """Replicas take embedding ids in one order and commit in another: a row that appears after the index saw a
    higher id is indexed at the next sync (and no row twice)."""
    from db.models import Embedding

    svc = migrated_services(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    try:
        rng = np.random.default_rng(3)
        photos = [p.read_bytes() for p in dataset_images("grass", 3)]
        with svc.session() as session:
            samples = [add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD)[0] for data in photos]
            vectors = rng.random((3, 1280)).astype(np.float32)

            def cache(sample_index: int, embedding_id: int) -> None:
                session.add(Embedding(id=embedding_id, sha256=samples[sample_index].sha256, backbone="b", dim=1280,
                                      vector=vectors[sample_index].tobytes()))
                session.commit()

            index = NearDuplicateFinder(RULE).index("b")
            cache(0, 10)
            cache(2, 30)
            index.sync(session)
            assert len(index) == 2
            cache(1, 20)  # committed late, below the newest id the index saw
            index.sync(session)
            index.sync(session)
            assert len(index) == 3
            assert index.nearest(vectors[1], k=1)[0][0] == samples[1].id
    finally:
        svc.close()


def test_a_cold_index_reads_the_embeddings_in_bounded_queries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process starting beside 100,000 embeddings reads them SYNC_CHUNK rows a query: one query of them all ran
    past the database's round-trip timeout on PostgreSQL at 100k (every upload then answered 503)."""
    from db.models import Embedding
    from model.data import near_duplicates

    monkeypatch.setattr(near_duplicates, "SYNC_CHUNK", 3)
    batches: list[int] = []
    read = queries.sample_embeddings_after
    monkeypatch.setattr(queries, "sample_embeddings_after",
                        lambda *args, **kwargs: batches.append(len(rows := read(*args, **kwargs))) or rows)
    svc = migrated_services(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    try:
        vectors = np.random.default_rng(4).random((10, 1280)).astype(np.float32)
        with svc.session() as session:
            for i, vector in enumerate(vectors):
                sample, _ = add_sample(session, svc.store, data=random_image_bytes("PNG", seed=40 + i),
                                       source=SampleSource.UPLOAD)
                session.add(Embedding(sha256=sample.sha256, backbone="b", dim=1280, vector=vector.tobytes()))
                session.commit()
            index = NearDuplicateFinder(RULE).index("b")
            index.sync(session)
            assert len(index) == 10 and max(batches) == 3 and sum(batches) == 10, batches
            assert index.nearest(vectors[7], k=1)[0][1] > 0.999
    finally:
        svc.close()


def test_the_perceptual_hash_has_imagehash_bits_without_importing_scipy() -> None:
    """Hashes stored before stay comparable; and the first photo an API process hashes imports no scipy.fft
    (it took 0.4 s under the import lock, which stalled every upload in flight and /readyz with them)."""
    rng = np.random.default_rng(7)
    images = [Image.open(path).convert("RGB") for label in ("dandelion", "grass")
              for path in dataset_images(label, 40)]
    images += [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 90, 3), dtype=np.uint8)) for i in range(40)]
    # Ties with the median: blank, one-pixel, thin, gradient, checkerboard, diagonally symmetric, 16-bit images.
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    noise = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    images += [Image.new(mode, size, colour) for mode, size, colour in (
        ("RGB", (64, 48), "green"), ("L", (64, 48), 0), ("L", (64, 48), 128), ("RGBA", (30, 30), (1, 2, 3, 4)),
        ("RGB", (1, 1), "red"), ("L", (2, 500), 7), ("P", (500, 2), 3))]
    images += [Image.fromarray(ramp), Image.fromarray(ramp.T.copy()), Image.fromarray(np.maximum(noise, noise.T)),
               Image.fromarray((np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)),
               Image.fromarray(rng.integers(0, 65535, (40, 50)).astype(np.uint16))]
    assert [phash_of(im) for im in images] == [str(imagehash.phash(im)) for im in images]
    photo = dataset_images("grass", 1)[0]
    code = ("import sys; from PIL import Image; from model.data.near_duplicates import phash_of; "
            f"phash_of(Image.open({str(photo)!r}).convert('RGB')); "
            "print(sorted(m for m in sys.modules if m.startswith('scipy')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:] or proc.stdout


# --- `sprout dedup` on existing data ---

BACKBONE = "efficientnet_lite0"


def copy_in_another_split(data: bytes) -> bytes:
    """A near copy of ``data`` whose (keyed) split differs from the original's: a leak once both are imported."""
    split = split_for(hashlib.sha256(data).hexdigest(), key=TEST_SPLIT_KEY)
    for quality in range(95, 60, -1):
        copy = near_copy(data, crop=0.10, scale=0.8, quality=quality)
        if split_for(hashlib.sha256(copy).hexdigest(), key=TEST_SPLIT_KEY) is not split:
            return copy
    raise AssertionError("no copy in another split")


@pytest.mark.parametrize("report_only", [True, False])
def test_dedup_finds_the_imported_copy_and_its_leak(tmp_path: Path, report_only: bool) -> None:
    svc = migrated_services(Settings(_env_file=None, home=tmp_path))  # type: ignore[call-arg]
    try:
        photos = [p.read_bytes() for p in dataset_images("dandelion", 6) + dataset_images("grass", 6)]
        copy = copy_in_another_split(photos[2])
        with svc.session() as session:
            for i, data in enumerate([*photos, copy]):
                add_sample(session, svc.store, data=data, source=SampleSource.IMPORT,
                           label="dandelion" if i < 6 or i == len(photos) else "grass")
            rows = queries.all_samples(session)
            embed_images(session, svc.store, load_backbone(BACKBONE, svc.settings),
                         [ImageRef(s.sha256, s.object_key) for s in rows])
            for row in rows:  # samples from before pHashes were kept: dedup computes them
                row.phash = None
            session.commit()
            report = dedup_report(session, svc.store, svc.near_duplicates.rule, backbone=BACKBONE,
                                  report_only=report_only)
            by_sha = {s.sha256: s for s in queries.all_samples(session)}
        original, twin = by_sha[hashlib.sha256(photos[2]).hexdigest()], by_sha[hashlib.sha256(copy).hexdigest()]
        assert report.checked == 13 and report.without_embedding == 0 and report.hashed == 13
        assert [[m["id"] for m in g] for g in report.groups] == [[original.id, twin.id]]
        assert report.leaks == report.groups and original.split is not twin.split  # reported, never moved
        if report_only:
            assert original.phash is None and twin.duplicate_group is None
        else:
            assert original.phash and twin.duplicate_group == original.id == original.duplicate_group
            assert report.linked == 2
    finally:
        svc.close()
