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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from db.models import Embedding, RunStatus, SampleSource, TrainingRun, TrainingRunSample
from model.core.errors import ConflictError, NotFoundError
from model.core.settings import Settings
from model.data.export import EMBEDDINGS, MANIFEST, MANIFEST_COLUMNS, export_dataset, open_destination
from model.data.importer import find_labeled_files, import_directory, local_tree
from model.data.samples import Prediction, add_sample, get_sample, relabel_sample, review_sample
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
        return export_dataset(session, svc.store, store, dest_name=name, **kwargs).as_dict()  # type: ignore[arg-type]


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
    change_after_the_run(world)  # the first dandelion moves to grass: its old file must not stay behind
    replaced = export(world, dest, overwrite=True)
    assert replaced["replaced"] == 7 and replaced["by_label"] == {"dandelion": 2, "grass": 4}
    assert Counter(label for label, _ in find_labeled_files(dest)) == {"dandelion": 2, "grass": 4}
    assert not (dest / EMBEDDINGS).exists()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ConflictError, match="notes.txt"):
        export(world, dest, overwrite=True)
    assert (dest / "notes.txt").read_text() == "mine" and (dest / MANIFEST).is_file()


def _cli(home: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(home), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    proc = subprocess.run([SPROUT, "--json", *args], capture_output=True, text=True, env=env, timeout=300,
                          cwd=home.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout[:2000]
    return json.loads(lines[0])


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
