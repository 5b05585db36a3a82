"""`sprout export-dataset`: a folder-per-label tree with manifest.csv (and embeddings.parquet) that `sprout import`
reads back; ``--version N`` exports exactly that version's lineage; local and s3:// destinations."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from db.models import Embedding, RunStatus, Sample, SampleSource, TrainingRun, TrainingRunSample
from model.core.errors import ConflictError, NotFoundError
from model.core.settings import Settings
from model.data.export import EMBEDDINGS, MANIFEST, MANIFEST_COLUMNS, export_dataset, open_destination
from model.data.importer import find_labeled_files, import_directory, local_tree
from model.data.samples import Prediction, add_sample, get_sample
from model.data.storage import s3_store
from model.review.actions import relabel_sample, review_sample
from model.runtime.services import Services
from tests import servers
from tests.utils.images import dataset_images
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

SPROUT = str(Path(sys.executable).with_name("sprout"))
BACKBONE = "efficientnet_lite0"
DIM = 1280


@dataclass
class World:
    """A home with 4 imported samples, 1 reviewed upload, and a run (version 1) that used all five."""

    svc: Services
    ids: list[int]  # dandelion, dandelion, grass, grass (imports), grass (the reviewed upload)
    vectors: dict[str, np.ndarray]


def make_world(settings: Settings) -> World:
    svc = migrated_services(settings)
    files = dataset_images("dandelion", 2) + dataset_images("grass", 3)
    rng = np.random.default_rng(0)
    with svc.session() as session:
        samples = [add_sample(session, svc.store, data=f.read_bytes(), source=SampleSource.IMPORT,
                              label=f.parent.name)[0] for f in files[:4]]
        upload, _ = add_sample(session, svc.store, data=files[4].read_bytes(), source=SampleSource.UPLOAD,
                               prediction=Prediction("dandelion", 0.6, "1"))
        samples.append(review_sample(session, svc.store, sample_id=upload.id, action="approve", label="grass",
                                     reviewer="ann"))
        samples[1].duplicate_group = samples[0].id
        vectors = {s.sha256: rng.normal(size=DIM).astype(np.float32) for s in samples[:4]}  # the upload: none
        session.add_all(Embedding(sha256=sha, backbone=BACKBONE, dim=DIM, vector=v.tobytes())
                        for sha, v in vectors.items())
        session.add(TrainingRun(backbone=BACKBONE, labels=["dandelion", "grass"], status=RunStatus.SUCCEEDED,
                                registered_version="1", promoted=True, samples=[
                                    TrainingRunSample(sample_id=s.id, split=s.split, label=s.label or "")
                                    for s in samples]))
        session.commit()
        return World(svc=svc, ids=[s.id for s in samples], vectors=vectors)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]


def change_after_the_run(world: World) -> int:
    """Approve a new sample and relabel the first dandelion as grass after version 1's run; the new id."""
    svc = world.svc
    with svc.session() as session:
        late, _ = add_sample(session, svc.store, data=dataset_images("dandelion", 3)[2].read_bytes(),
                             source=SampleSource.IMPORT, label="dandelion")
        relabel_sample(session, svc.store, sample_id=world.ids[0], label="grass", reviewer="admin")
        return late.id


def export(world: World, dest: Path | str, **kwargs: object) -> dict:
    svc = world.svc
    store, name = open_destination(dest, svc.settings)
    with svc.session() as session:
        return export_dataset(session, svc.store, store, dest_name=name, **kwargs).to_dict()  # type: ignore[arg-type]


def read_manifest(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
    return list(reader)


def test_manifest_columns_and_values(world: World, tmp_path: Path) -> None:
    summary = export(world, tmp_path / "out")
    assert summary == {"dest": str(tmp_path / "out"), "samples": 5, "by_label": {"dandelion": 2, "grass": 3},
                       "version": None, "embeddings": None, "replaced": 0}
    rows = read_manifest((tmp_path / "out" / MANIFEST).read_text())
    with world.svc.session() as session:
        samples = [get_sample(session, i) for i in world.ids]
    assert [r["sha256"] for r in rows] == [s.sha256 for s in samples]
    for row, sample in zip(rows, samples, strict=True):
        assert row["file"] == f"{sample.label}/{sample.object_key.rsplit('/', 1)[-1]}" == \
            f"{sample.label}/{sample.sha256}.jpg"
        assert (tmp_path / "out" / row["file"]).read_bytes() == world.svc.store.get(sample.object_key)
        assert (row["label"], row["split"], row["source"]) == (sample.label, sample.split.value, sample.source.value)
        approved = datetime.fromisoformat(row["approved_at"])
        assert approved.utcoffset() is not None and approved.replace(tzinfo=None) == sample.approved_at
    assert [r["reviewer"] for r in rows] == ["", "", "", "", "ann"]
    assert [r["near_duplicate_group"] for r in rows] == ["", str(world.ids[0]), "", "", ""]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dandelion", "grass", MANIFEST]


def test_version_exports_exactly_the_lineage(world: World, tmp_path: Path) -> None:
    late = change_after_the_run(world)
    summary = export(world, tmp_path / "v1", version="1")
    assert summary["version"] == "1" and summary["by_label"] == {"dandelion": 2, "grass": 3}
    rows = {r["sha256"]: r for r in read_manifest((tmp_path / "v1" / MANIFEST).read_text())}
    with world.svc.session() as session:
        relabeled, new = get_sample(session, world.ids[0]), get_sample(session, late)
        assert relabeled.label == "grass" and relabeled.reviewed_by == "admin"
        assert new.sha256 not in rows and len(rows) == 5
        row = rows[relabeled.sha256]
        assert (row["label"], row["file"]) == ("dandelion", f"dandelion/{relabeled.sha256}.jpg")
        assert row["reviewer"] == ""  # as of the run: an import nobody had reviewed yet
        assert datetime.fromisoformat(row["approved_at"]).replace(tzinfo=None) == relabeled.created_at
    assert (tmp_path / "v1" / "dandelion" / f"{relabeled.sha256}.jpg").is_file()
    assert not (tmp_path / "v1" / "grass" / f"{relabeled.sha256}.jpg").exists()
    current = export(world, tmp_path / "now")  # without --version: today's labels, and the late sample
    assert current["by_label"] == {"dandelion": 2, "grass": 4}
    with pytest.raises(NotFoundError, match="version 7"):
        export(world, tmp_path / "v7", version="7")
    assert not any((tmp_path / "v7").iterdir())


def test_embeddings_parquet_has_the_runs_vectors(world: World, tmp_path: Path) -> None:
    summary = export(world, tmp_path / "out", version="1", embeddings=True)
    assert summary["embeddings"] == {"file": EMBEDDINGS, "backbone": BACKBONE, "rows": 4, "missing": 1}
    table = pq.read_table(tmp_path / "out" / EMBEDDINGS)
    assert table.schema.names == ["sha256", "backbone", "vector"]
    assert table.schema.field("vector").type == pa.list_(pa.float32())
    assert table.num_rows == 4 and set(table.column("backbone").to_pylist()) == {BACKBONE}
    for sha, vector in zip(table.column("sha256").to_pylist(), table.column("vector").to_pylist(), strict=True):
        assert len(vector) == DIM
        np.testing.assert_array_equal(np.asarray(vector, dtype=np.float32), world.vectors[sha])
    # the export still imports to the same counts: manifest.csv and embeddings.parquet are no samples
    assert Counter(label for label, _ in find_labeled_files(tmp_path / "out")) == {"dandelion": 2, "grass": 3}


def test_embeddings_without_version_follow_the_champion(world: World, tmp_path: Path) -> None:
    with world.svc.session() as session:
        session.add(TrainingRun(backbone="efficientnet_lite1", status=RunStatus.SUCCEEDED, registered_version="2"))
        session.commit()
    assert export(world, tmp_path / "a", embeddings=True, champion_version=lambda: "1")["embeddings"]["rows"] == 4
    latest = export(world, tmp_path / "b", embeddings=True)["embeddings"]  # no champion: the latest run
    assert latest == {"file": EMBEDDINGS, "backbone": "efficientnet_lite1", "rows": 0, "missing": 5}
    assert pq.read_table(tmp_path / "b" / EMBEDDINGS).num_rows == 0


def test_a_destination_is_never_mixed(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(world, dest, embeddings=True)
    with pytest.raises(ConflictError, match="--overwrite"):
        export(world, dest)
    (dest / "notes.txt").write_text("mine")  # a file of the user's, which no manifest lists
    (dest / "grass" / "mine.jpg").write_bytes(b"also mine")
    with world.svc.session() as session:
        old_file = dest / "dandelion" / f"{get_sample(session, world.ids[0]).sha256}.jpg"
    assert old_file.is_file()
    change_after_the_run(world)  # the first dandelion moves to grass: its old file must not stay behind
    replaced = export(world, dest, overwrite=True)
    assert replaced["replaced"] == 7 and replaced["by_label"] == {"dandelion": 2, "grass": 4}
    assert not old_file.exists() and not (dest / EMBEDDINGS).exists()
    assert (dest / "notes.txt").read_text() == "mine" and (dest / "grass" / "mine.jpg").read_bytes() == b"also mine"
    listed = {r["file"] for r in read_manifest((dest / MANIFEST).read_text())}
    exported = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert exported == listed | {MANIFEST, "notes.txt", "grass/mine.jpg"}


def test_overwrite_deletes_nothing_until_the_new_copy_is_complete(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    export(world, dest, embeddings=True)
    before = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    change_after_the_run(world)

    def fails_midway(rows: Iterable[Any], _total: int) -> Iterator[Any]:
        for i, row in enumerate(rows):
            if i == 3:
                raise OSError("disk full")
            yield row

    with pytest.raises(OSError, match="disk full"):
        export(world, dest, overwrite=True, progress=fails_midway)
    after = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k in before} == before  # the earlier export is whole
    assert after[MANIFEST] == before[MANIFEST]


def test_overwrite_refuses_what_no_export_wrote(world: World, tmp_path: Path) -> None:
    """A folder-per-label tree named like an export (as the store's labeled/ is) without manifest.csv, or with
    one that lists files no export writes, is no previous export: nothing is deleted."""
    tree = tmp_path / "tree"
    (tree / "grass").mkdir(parents=True)
    (tree / "grass" / f"{'a' * 64}.jpg").write_bytes(b"precious")
    with pytest.raises(ConflictError, match=MANIFEST):
        export(world, tree, overwrite=True)
    assert (tree / "grass" / f"{'a' * 64}.jpg").read_bytes() == b"precious"
    (tree / "keep.txt").write_text("precious")
    (tree / MANIFEST).write_text(",".join(MANIFEST_COLUMNS) + "\n" + f"{'b' * 64},keep.txt,grass,,,,,\n")
    with pytest.raises(ConflictError, match="keep.txt"):
        export(world, tree, overwrite=True)
    assert (tree / "keep.txt").read_text() == "precious" and len(list(tree.rglob("*.jpg"))) == 1


def test_overwrite_does_not_follow_a_linked_label_folder(world: World, tmp_path: Path) -> None:
    dest, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    export(world, dest)
    (dest / "grass").rename(elsewhere)
    (dest / "grass").symlink_to(elsewhere, target_is_directory=True)
    kept = sorted(p.name for p in elsewhere.iterdir())
    change_after_the_run(world)
    with pytest.raises(ConflictError, match="link"):
        export(world, dest, overwrite=True)
    assert sorted(p.name for p in elsewhere.iterdir()) == kept


def object_files(settings: Settings) -> list[str]:
    """Every file in the local object store."""
    root = settings.objects_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def add_pending_upload(world: World) -> None:
    svc = world.svc
    with svc.session() as session:
        add_sample(session, svc.store, data=dataset_images("grass", 4)[3].read_bytes(), source=SampleSource.UPLOAD,
                   prediction=Prediction("grass", 0.9, "1"))


def sample_count(world: World) -> int:
    with world.svc.session() as session:
        return session.scalar(select(func.count(Sample.id))) or 0


@pytest.mark.parametrize("where", ["labeled", "labeled/grass", ".", "..", "pending/../labeled", "inside/new", "link"])
def test_export_into_the_live_store_is_refused(world: World, tmp_path: Path, where: str) -> None:
    add_pending_upload(world)
    objects = world.svc.settings.objects_dir
    (tmp_path / "link").symlink_to(objects / "labeled", target_is_directory=True)
    dest = tmp_path / "link" if where == "link" else objects / where
    before = object_files(world.svc.settings)
    assert len(before) == 6
    with pytest.raises(ConflictError, match="Sprout's object store"):
        export(world, dest, overwrite=True)
    assert object_files(world.svc.settings) == before


@pytest.mark.parametrize("where", [".", "pending", "labeled", "..", "linked-label"])
def test_import_from_the_live_store_is_refused(world: World, tmp_path: Path, where: str) -> None:
    add_pending_upload(world)
    objects = world.svc.settings.objects_dir
    source = objects / where
    if where == "linked-label":  # an outside tree whose label folder leads into pending/
        source = tmp_path / "tree"
        source.mkdir()
        (source / "grass").symlink_to(objects / "pending", target_is_directory=True)
    before, count = object_files(world.svc.settings), sample_count(world)
    with pytest.raises(ConflictError, match="Sprout's object store"):  # noqa: PT012
        with local_tree(source, world.svc.settings) as tree, world.svc.session() as session:
            import_directory(session, world.svc.store, tree)
    assert sample_count(world) == count and object_files(world.svc.settings) == before


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(home), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    return subprocess.run([SPROUT, "--json", *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=home.parent)


def _cli(home: Path, *args: str) -> dict:
    proc = _run(home, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout[:2000]
    return json.loads(lines[0])


def test_cli_refuses_the_live_store(world: World) -> None:
    """The reported commands: export into <home>/objects/labeled --overwrite, import <home>/objects."""
    add_pending_upload(world)
    home, objects = world.svc.settings.home, world.svc.settings.objects_dir
    before, count = object_files(world.svc.settings), sample_count(world)
    for args in (["export-dataset", str(objects / "labeled"), "--overwrite"], ["import", str(objects)]):
        proc = _run(home, *args)
        assert proc.returncode == 1, proc.stdout
        answer = json.loads(proc.stdout)
        assert answer["type"] == "ConflictError" and "Sprout's object store" in answer["error"], answer
    assert object_files(world.svc.settings) == before and sample_count(world) == count


def test_cli_round_trip_imports_back_to_the_same_counts(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "export"
    exported = _cli(world.svc.settings.home, "export-dataset", str(dest), "--embeddings")
    assert exported["samples"] == 5 and exported["by_label"] == {"dandelion": 2, "grass": 3}
    assert exported["version"] is None and exported["embeddings"]["backbone"] == BACKBONE
    assert (dest / MANIFEST).is_file() and (dest / EMBEDDINGS).is_file()
    fresh = tmp_path / "fresh"
    _cli(fresh, "db", "upgrade")
    imported = _cli(fresh, "import", str(dest))
    assert imported["added_by_label"] == exported["by_label"] and imported["errors"] == []
    assert imported["skipped_duplicates"] == 0


@pytest.mark.integration
def test_s3_destination_round_trip(s3_server: servers.S3Server, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:12]

    def settings(name: str) -> Settings:
        return Settings(_env_file=None, home=tmp_path / name, s3_prefix=f"{name}-{tag}",  # type: ignore[call-arg]
                        s3_endpoint=s3_server.endpoint, s3_access_key=s3_server.access_key,
                        s3_secret_key=SecretStr(s3_server.secret_key))

    world = make_world(settings("a"))
    dest = f"s3://exports-{tag}/datasets/v1"
    summary = export(world, dest, version="1", embeddings=True)
    assert summary["dest"] == dest and summary["samples"] == 5 and summary["embeddings"]["rows"] == 4
    with pytest.raises(ConflictError, match="not empty"):
        export(world, dest)
    store, _ = open_destination(dest, world.svc.settings)
    keys = list(store.list())
    assert MANIFEST in keys and EMBEDDINGS in keys and len(keys) == 7
    rows = read_manifest(store.get(MANIFEST).decode())
    assert sorted(r["file"] for r in rows) == sorted(k for k in keys if "/" in k)
    fresh = migrated_services(settings("b"))
    with local_tree(dest, fresh.settings) as tree, fresh.session() as session:
        imported = import_directory(session, fresh.store, tree)
    assert imported.added == Counter(summary["by_label"]) and imported.errors == []


@pytest.mark.integration
def test_s3_store_bucket_is_refused(s3_server: servers.S3Server, tmp_path: Path) -> None:
    """With the store on S3, any destination or source in its bucket is refused: nothing moves."""
    prefix = f"live-{uuid.uuid4().hex[:12]}"
    world = make_world(Settings(_env_file=None, home=tmp_path / "home", s3_prefix=prefix,  # type: ignore[call-arg]
                                s3_endpoint=s3_server.endpoint, s3_access_key=s3_server.access_key,
                                s3_secret_key=SecretStr(s3_server.secret_key)))
    add_pending_upload(world)
    settings = world.svc.settings
    bucket_keys = s3_store(settings, bucket=settings.s3_bucket, prefix=prefix).list
    before, count = list(bucket_keys()), sample_count(world)
    assert len(before) == 6
    for dest in (f"s3://{settings.s3_bucket}/{prefix}/labeled", f"s3://{settings.s3_bucket}/exports-{prefix}"):
        with pytest.raises(ConflictError, match="Sprout's object store"):
            export(world, dest, overwrite=True)
    with pytest.raises(ConflictError, match="Sprout's object store"):  # noqa: PT012
        with local_tree(f"s3://{settings.s3_bucket}/{prefix}", settings) as tree, world.svc.session() as session:
            import_directory(session, world.svc.store, tree)
    assert list(bucket_keys()) == before and sample_count(world) == count
    assert not list(s3_store(settings, bucket=settings.s3_bucket, prefix=f"exports-{prefix}").list())
