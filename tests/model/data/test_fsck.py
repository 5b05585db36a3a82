"""A crash between copy and delete is repaired by fsck with nothing lost; orphans are reported."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from db.models import Sample, SampleSource
from model.core.settings import Settings
from model.data.fsck import fsck
from model.data.samples import add_sample
from model.data.storage import ObjectStore
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.utils.services import migrated_services


class CrashAfterCopy:
    """A store whose delete 'crashes' (the process dies after copying and committing)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # noqa: ANN204 - delegate everything else
        return getattr(self.inner, name)

    def delete(self, key: str) -> None:
        raise KeyboardInterrupt("simulated crash before delete")


NO_GRACE = timedelta(0)


def image(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 30 % 255, 80, 160)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    return migrated_services(Settings(home=tmp_path))


def test_crash_between_copy_and_delete_is_repaired(svc: Services) -> None:
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(1), source=SampleSource.UPLOAD)
        with pytest.raises(KeyboardInterrupt):
            review_sample(session, CrashAfterCopy(svc.store), sample_id=sample.id, action="approve",
                          label="grass", reviewer="ann")
    with svc.session() as session:
        stored = session.get(Sample, sample.id)
        assert stored.object_key.startswith("labeled/grass/")  # the commit happened
        assert sorted(svc.store.list()) == sorted([stored.object_key, f"pending/{stored.sha256}.png"])
        dry = fsck(session, svc.store, repair=False, grace=NO_GRACE)
        assert dry.removed_leftovers == [f"pending/{stored.sha256}.png"] and dry.ok
        assert len(list(svc.store.list())) == 2  # a dry run changes nothing
        report = fsck(session, svc.store, grace=NO_GRACE)
        assert report.removed_leftovers == [f"pending/{stored.sha256}.png"]
        assert list(svc.store.list()) == [stored.object_key]
        assert svc.store.get(stored.object_key) == image(1)  # nothing lost
        assert fsck(session, svc.store, grace=NO_GRACE).to_dict()["removed_leftovers"] == []


def test_crash_after_copy_before_commit_keeps_the_original(svc: Services) -> None:
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(2), source=SampleSource.UPLOAD)
        svc.store.copy(sample.object_key, f"labeled/grass/{sample.sha256}.png")  # copied, never committed
        report = fsck(session, svc.store, grace=NO_GRACE)
        assert report.removed_leftovers == [f"labeled/grass/{sample.sha256}.png"]
        assert list(svc.store.list()) == [sample.object_key]


def test_missing_object_restored_from_a_leftover_copy_and_orphans_reported(svc: Services) -> None:
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(3), source=SampleSource.UPLOAD, label="grass")
        svc.store.put(f"pending/{sample.sha256}.png", image(3))
        svc.store.delete(sample.object_key)  # e.g. restored from an old backup
        svc.store.put("pending/" + "ab" * 32 + ".png", image(4))  # nobody knows this object
        report = fsck(session, svc.store, grace=NO_GRACE)
        assert report.restored == [sample.object_key]
        assert report.orphans == ["pending/" + "ab" * 32 + ".png"]
        assert svc.store.get(sample.object_key) == image(3)
        assert report.ok


def test_a_lost_object_is_reported_missing(svc: Services) -> None:
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(5), source=SampleSource.UPLOAD, label="grass")
        svc.store.delete(sample.object_key)
        report = fsck(session, svc.store, grace=NO_GRACE)
        assert report.missing == [sample.object_key] and not report.ok


def test_fsck_during_a_review_in_flight_keeps_the_new_copy(svc: Services) -> None:
    """The race: a review has copied pending → labeled but not committed yet when fsck runs."""
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(6), source=SampleSource.UPLOAD)
        new_key = f"labeled/grass/{sample.sha256}.png"
        svc.store.copy(sample.object_key, new_key)  # step 1 of the review's move
    with svc.session() as fsck_session:
        report = fsck(fsck_session, svc.store)  # default grace: the fresh copy may be a move in flight
    assert new_key in report.kept_recent and new_key not in report.removed_leftovers
    with svc.session() as session:  # the review commits, then deletes pending/
        row = session.get(Sample, sample.id)
        old_key, row.object_key = row.object_key, new_key
        session.commit()
        svc.store.delete(old_key)
    assert svc.store.get(new_key) == image(6)  # the approved sample's only copy survived


def test_fsck_rereads_the_row_before_deleting(svc: Services) -> None:
    """Even past the grace period: a row committed after fsck's first read protects its new key."""
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=image(7), source=SampleSource.UPLOAD)
        new_key = f"labeled/grass/{sample.sha256}.png"
        svc.store.copy(sample.object_key, new_key)

    class CommitDuringFsck:
        """The review commits right after fsck listed the store (between its read and its delete)."""

        def __init__(self, inner: ObjectStore) -> None:
            self.inner, self.done = inner, False

        def __getattr__(self, name: str):  # noqa: ANN204
            return getattr(self.inner, name)

        def modified(self, key: str):  # noqa: ANN201
            if not self.done:
                self.done = True
                with svc.session() as other:
                    other.get(Sample, sample.id).object_key = new_key
                    other.commit()
            return self.inner.modified(key)

    with svc.session() as fsck_session:
        fsck(fsck_session, CommitDuringFsck(svc.store), grace=NO_GRACE)
    assert svc.store.exists(new_key)


def test_a_stripped_object_is_restored_from_its_copy(svc: Services) -> None:
    """Stored objects are the uploads without metadata: fsck checks a copy against the stored digest."""
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (40, 160, 60)).save(buf, "JPEG", exif=exif.tobytes())
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=buf.getvalue(), source=SampleSource.UPLOAD, label="grass")
        stored = svc.store.get(sample.object_key)
        assert stored != buf.getvalue() and b"SecretCam" not in stored
        svc.store.put(f"pending/{sample.sha256}.jpg", stored)
        svc.store.delete(sample.object_key)
        report = fsck(session, svc.store, grace=NO_GRACE)
        assert report.restored == [sample.object_key] and report.ok
        assert svc.store.get(sample.object_key) == stored
