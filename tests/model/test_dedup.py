"""`sprout dedup`: near-duplicate groups and cross-split leaks in existing data (imports have no intake check)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from db import queries
from db.models import SampleSource
from model.core.settings import Settings
from model.data.near_duplicates import dedup_report
from model.data.samples import add_sample, split_for
from model.learning.backbones import load_backbone
from model.learning.embeddings import ImageRef, embed_images
from tests.utils.images import dataset_images, near_copy
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

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
