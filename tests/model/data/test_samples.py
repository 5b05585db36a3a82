"""Sample use cases: upload, dedup, review moves with audit log, import with bad files; the keyed split."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from db.models import Review, ReviewAction, SampleSource, SampleStatus, Split
from model.core.errors import ConflictError, InvalidImageError, InvalidLabelError, NotFoundError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import Prediction, add_sample, sha256_of, split_for
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.utils.services import migrated_services


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path: Path) -> Services:
    return migrated_services(Settings(home=tmp_path))


def test_upload_lands_in_pending_named_by_hash_and_duplicates_are_stored_once(svc: Services) -> None:
    data = jpeg((10, 200, 10))
    with svc.session() as session:
        sample, created = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD,
                                     suggested_label="grass", prediction=Prediction("grass", 0.8, "1"))
        again, created_again = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD)
    assert created and not created_again and again.id == sample.id
    assert sample.object_key == f"pending/{sha256_of(data)}.jpg"
    assert sample.status is SampleStatus.PENDING and sample.confidence == 0.8
    assert list(svc.store.list()) == [sample.object_key]
    assert svc.store.get(sample.object_key) == data


def test_bad_input_is_refused_and_nothing_is_stored(svc: Services) -> None:
    with svc.session() as session:
        with pytest.raises(InvalidImageError):
            add_sample(session, svc.store, data=jpeg((1, 2, 3))[:60], source=SampleSource.UPLOAD)
        with pytest.raises(InvalidLabelError):
            add_sample(session, svc.store, data=jpeg((1, 2, 3)), source=SampleSource.UPLOAD, label="../etc")
    assert list(svc.store.list()) == []


def test_approve_correct_reject_move_objects_and_write_the_audit_log(svc: Services) -> None:
    images = [jpeg((i * 40, 100, 50)) for i in range(3)]
    with svc.session() as session:
        ids = [add_sample(session, svc.store, data=d, source=SampleSource.UPLOAD,
                          prediction=Prediction("dandelion", 0.6, "1"))[0].id for d in images]
        approved = review_sample(session, svc.store, sample_id=ids[0], action="approve", reviewer="ann")
        corrected = review_sample(session, svc.store, sample_id=ids[1], action="approve", label="grass",
                                  reviewer="bob")
        rejected = review_sample(session, svc.store, sample_id=ids[2], action="reject", reviewer="ann")
        assert approved.label == "dandelion" and approved.object_key.startswith("labeled/dandelion/")
        assert corrected.label == "grass" and corrected.object_key.startswith("labeled/grass/")
        assert rejected.status is SampleStatus.REJECTED and rejected.object_key.startswith("rejected/")
        assert approved.approved_at is not None and approved.reviewed_by == "ann"
        log = session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.reviewer, r.action, r.old_label, r.new_label) for r in log] == [
            ("ann", ReviewAction.APPROVE, "dandelion", "dandelion"),
            ("bob", ReviewAction.CORRECT, "dandelion", "grass"),
            ("ann", ReviewAction.REJECT, "dandelion", None),
        ]
        with pytest.raises(ConflictError):
            review_sample(session, svc.store, sample_id=ids[0], action="reject", reviewer="ann")
        with pytest.raises(NotFoundError):
            review_sample(session, svc.store, sample_id=999, action="reject", reviewer="ann")
    keys = sorted(svc.store.list())
    assert not any(k.startswith("pending/") for k in keys) and len(keys) == 3


def test_import_reports_added_duplicates_and_unreadable_files(svc: Services, tmp_path: Path) -> None:
    root = tmp_path / "set"
    for label, colours in {"cats": [(200, 0, 0), (190, 5, 5)], "dogs": [(0, 0, 200)]}.items():
        (root / label).mkdir(parents=True)
        for i, colour in enumerate(colours):
            (root / label / f"{i}.jpg").write_bytes(jpeg(colour))
    (root / "dogs" / "copy.jpg").write_bytes(jpeg((200, 0, 0)))  # same bytes as cats/0.jpg
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "dogs" / "notes.txt").write_text("ignored: not an image suffix")
    with svc.session() as session:
        summary = import_directory(session, svc.store, root).to_dict()
        again = import_directory(session, svc.store, root).to_dict()
    assert summary["added"] == 3 and summary["added_by_label"] == {"cats": 2, "dogs": 1}
    assert summary["skipped_duplicates"] == 1
    assert [e["file"] for e in summary["errors"]] == ["dogs/broken.jpg"]
    assert again["added"] == 0 and again["skipped_duplicates"] == 4
    assert sorted(k.split("/")[1] for k in svc.store.list()) == ["cats", "cats", "dogs"]


def test_an_uploader_cannot_choose_the_test_split_by_appending_bytes(svc: Services, tmp_path: Path) -> None:
    """Unkeyed, the split was sha256(bytes) mod 10: appending bytes until it says 'test' picked membership."""
    import hashlib

    base = jpeg((30, 120, 40))
    chosen = []
    for n in range(2000):  # what an attacker does: trailing bytes until the public formula says "test"
        data = base + b"\0" * n
        if int(hashlib.sha256(data).hexdigest()[:8], 16) % 10 == 9:
            chosen.append(data)
        if len(chosen) == 30:
            break
    with svc.session() as session:
        splits = [add_sample(session, svc.store, data=d, source=SampleSource.UPLOAD)[0].split for d in chosen]
    assert splits.count(Split.TEST) < 15, splits  # keyed: about 10% land in test, never all 30
    other = migrated_services(Settings(home=tmp_path / "other", split_key="another-installation"))  # another key
    with other.session() as session:
        again = [add_sample(session, other.store, data=d, source=SampleSource.UPLOAD)[0].split for d in chosen]
    assert again != splits


def test_a_plain_approve_takes_the_prediction_never_the_uploaders_suggestion(svc: Services) -> None:
    """An anonymous uploader's suggestion is a hint for the reviewer: approve means the model's label."""
    with svc.session() as session:
        sample, _ = add_sample(session, svc.store, data=jpeg((90, 10, 160)), source=SampleSource.UPLOAD,
                               suggested_label="grass", prediction=Prediction("dandelion", 0.7, "1"))
        approved = review_sample(session, svc.store, sample_id=sample.id, action="approve", reviewer="ann")
        assert approved.label == "dandelion" and approved.object_key.startswith("labeled/dandelion/")
        assert approved.reviews[-1].action is ReviewAction.APPROVE
        unpredicted, _ = add_sample(session, svc.store, data=jpeg((10, 90, 160)), source=SampleSource.UPLOAD,
                                    suggested_label="grass")
        with pytest.raises(InvalidLabelError):  # no prediction: the reviewer names the label
            review_sample(session, svc.store, sample_id=unpredicted.id, action="approve", reviewer="ann")


def test_split_is_deterministic_and_about_80_10_10() -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    splits = [split_for(h, key="k" * 64) for h in hashes]
    assert splits == [split_for(h, key="k" * 64) for h in hashes]
    other = [split_for(h, key="another-key") for h in hashes]
    assert sum(a != b for a, b in zip(splits, other, strict=True)) > 1000  # the key decides, not the hash alone
    share = {s: splits.count(s) / len(splits) for s in Split}
    assert share[Split.TRAIN] == pytest.approx(0.8, abs=0.02)
    assert share[Split.VAL] == pytest.approx(0.1, abs=0.015)
    assert share[Split.TEST] == pytest.approx(0.1, abs=0.015)
