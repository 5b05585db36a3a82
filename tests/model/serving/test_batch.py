"""Batch scoring (model/serving/batch.py): listing, sharding, results files and outputs, scoring in worker
processes; the CLI on SeaweedFS at the end. The merged report and its MLflow run: tests/model/reports/test_batch.py."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import mlflow
import numpy as np
import onnx
import pytest

from model.core.errors import SproutError
from model.core.settings import Settings
from model.learning.backbones import load_backbone
from model.learning.onnx_export import build_classifier
from model.serving.batch import (
    FIELDS,
    Output,
    Shard,
    decode_rows,
    encode_rows,
    error_row,
    list_images,
    score_paths,
    shard_of,
    shard_sizes,
)
from tests import servers
from tests.utils.champion import register_random_champion
from tests.utils.images import dataset_images, random_image_bytes
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

LABELS = ["dandelion", "grass"]
SPROUT = str(Path(sys.executable).with_name("sprout"))


def row(path: str, label: str, confidence: float, version: str = "3", *, abstained: bool = True,
        unfamiliar: bool = False) -> dict:
    other = next(lb for lb in LABELS if lb != label)
    return {"path": path, "label": label, "confidence": confidence, "model_version": version, "error": None,
            "probabilities": {label: confidence, other: 1 - confidence}, "abstained": abstained,
            "unfamiliar": unfamiliar}


# --------------------------------------------------------------------------- listing and sharding


def test_shards_partition_any_listing_exactly() -> None:
    paths = [f"s3://b/images/{i:05d}.jpg" for i in range(1000)]
    for count in (1, 2, 3, 7):
        shards = [[p for p in paths if Shard(i, count).holds(p)] for i in range(count)]
        assert sorted(p for shard in shards for p in shard) == paths  # each path in exactly one shard
        assert [len(s) for s in shards] == shard_sizes(paths, count)
        assert all(len(s) > 1000 / count * 0.8 for s in shards), [len(s) for s in shards]
        shuffled = random.Random(count).sample(paths, len(paths))  # another listing order: the same shards
        assert [sorted(p for p in shuffled if Shard(i, count).holds(p)) for i in range(count)] == shards
        assert all(shard_of(p, count) == i for i, shard in enumerate(shards) for p in shard)


@pytest.mark.parametrize("text", ["3", "4/4", "-1/4", "a/b", "1/0", ""])
def test_a_bad_shard_is_refused(text: str) -> None:
    with pytest.raises(SproutError, match="I/N"):
        Shard.parse(text)


def test_shard_parses_and_names_its_file(tmp_path: Path) -> None:
    shard = Shard.parse("2/12")
    assert (shard.index, shard.count, str(shard)) == (2, 12, "2/12")
    assert Output(str(tmp_path), Settings(home=tmp_path)).shard_name(shard) == "shards/results-00002-of-00012.jsonl"


def test_list_images_walks_folders_keeps_named_files_and_skips_the_output(tmp_path: Path) -> None:
    images = tmp_path / "in"
    (images / "a" / "deep").mkdir(parents=True)
    (images / ".hidden").mkdir()
    for name in ("a/1.jpg", "a/deep/2.PNG", "b.webp", "notes.txt", ".hidden/3.jpg", "a/.4.jpg"):
        (images / name).write_bytes(b"x")
    out = Output(str(images / "scored"), Settings(home=tmp_path))
    (images / "scored").mkdir()
    (images / "scored" / "confidence.png").write_bytes(b"x")  # a previous run's, inside the source
    named = str(tmp_path / "missing.jpg")
    found = list_images([str(images), named, str(images / "b.webp")], Settings(home=tmp_path), skip=out.owns)
    assert found == [str(images / "a/1.jpg"), str(images / "a/deep/2.PNG"), str(images / "b.webp"), named]


# --------------------------------------------------------------------------- results files and outputs


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_results_round_trip(fmt: str) -> None:
    rows = [row("/x/a, b.jpg", "dandelion", 0.75), error_row('/x/"c".jpg', "not an image: PDF")]
    data = encode_rows(rows, fmt)
    assert decode_rows(data, fmt) == rows
    if fmt == "csv":  # the columns of before point 4 keep their positions; the later ones come last
        header = "path,label,confidence,probabilities,model_version,error,abstained,unfamiliar"
        assert data.decode().splitlines()[0] == ",".join(FIELDS) == header
        scored, failed = list(csv.reader(io.StringIO(data.decode())))[1:]
        assert scored[4:] == ["3", "", "true", "false"] and failed[4:] == ["", "not an image: PDF", "", ""]
    else:
        assert list(json.loads(data.decode().splitlines()[0])) == list(FIELDS)


def test_output_names_for_files_folders_and_prefixes(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    file = Output(str(tmp_path / "day1.csv"), settings)
    assert (file.is_file, file.fmt, file.results_name, file.report_name, file.histogram_name) == (
        True, "csv", "day1.csv", "day1.report.json", "day1.confidence.png")
    assert file.owns(str(tmp_path / "day1.confidence.png")) and not file.owns(str(tmp_path / "x.jpg"))
    folder = Output(str(tmp_path / "out") + "/", settings, fmt="csv")
    assert (folder.is_file, folder.results_name, folder.report_name) == (False, "results.csv", "report.json")
    assert folder.owns(str(tmp_path / "out" / "any.jpg"))
    prefix = Output("s3://bucket/runs/7/", settings)
    assert prefix.url(prefix.results_name) == "s3://bucket/runs/7/results.jsonl"
    assert prefix.owns("s3://bucket/runs/7/confidence.png") and not prefix.owns("s3://bucket/runs/70/a.jpg")
    with pytest.raises(SproutError, match="does not match"):
        Output(str(tmp_path / "a.csv"), settings, fmt="jsonl")
    with pytest.raises(SproutError, match="jsonl or csv"):
        Output(str(tmp_path), settings, fmt="parquet")


# --------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported lite0 classifier with a random 2-label head."""
    settings = Settings(home=tmp_path_factory.mktemp("batch-model"))
    backbone = load_backbone("efficientnet_lite0", settings)
    rng = np.random.default_rng(3)
    model = build_classifier(backbone, weight=rng.normal(0, 0.05, (2, backbone.dim)).astype(np.float32),
                             bias=np.zeros(2, np.float32), labels=LABELS, graphs_dir=settings.backbone_graphs_dir)
    path = settings.home / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_workers_score_in_input_order_and_report_bad_files(model_file: Path, tmp_path: Path) -> None:
    images = [str(p) for p in dataset_images("dandelion", 5) + dataset_images("grass", 4)]
    (tmp_path / "bad.jpg").write_bytes(b"%PDF-1.4 not an image")
    (tmp_path / "noise.jpg").write_bytes(random_image_bytes(seed=4))
    paths = [images[0], str(tmp_path / "bad.jpg"), *images[1:], str(tmp_path / "gone.jpg"),
             str(tmp_path / "noise.jpg")]
    settings = Settings(home=tmp_path / "home")
    done: list[int] = []
    one = score_paths(paths, model=model_file, version="5", settings=settings, workers=1, progress=done.append)
    two = score_paths(paths, model=model_file, version="5", settings=settings, workers=2, chunk_size=2)
    assert sum(done) == len(paths)
    assert [r["path"] for r in two] == paths
    for a, b in zip(one, two, strict=True):  # the same answers, whichever process scored them
        assert a.keys() == b.keys() and a["label"] == b["label"] and a["error"] == b["error"]
        assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-5) if a["confidence"] else True
    assert "PDF" in one[1]["error"] and one[1]["label"] is None
    assert one[-2]["error"].startswith("cannot read") and one[-1]["error"] is None
    good = [r for r in one if not r["error"]]
    assert len(good) == 10 and all(r["model_version"] == "5" and r["label"] in LABELS for r in good)
    assert all(r["confidence"] == max(r["probabilities"].values()) for r in good)


# --------------------------------------------------------------------------- the CLI on S3 (SeaweedFS)


@pytest.mark.slow
@pytest.mark.integration
def test_cli_scores_an_s3_prefix_into_an_s3_prefix(s3_server: servers.S3Server, tmp_path: Path) -> None:
    bucket = f"batch-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=s3_server.url, aws_access_key_id=s3_server.access_key,
                      aws_secret_access_key=s3_server.secret_key, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    files = dataset_images("dandelion", 6) + dataset_images("grass", 6)
    for i, path in enumerate(files):
        s3.put_object(Bucket=bucket, Key=f"incoming/day 1/{path.parent.name}/{i % 2}/{path.name}",
                      Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="incoming/day 1/broken.jpg", Body=b"GIF89a-nope")
    s3.put_object(Bucket=bucket, Key="incoming/day 1/notes.txt", Body=b"not an image")
    env = {"SPROUT_HOME": str(tmp_path / "home"), "SPROUT_S3_ENDPOINT": s3_server.endpoint,
           "SPROUT_S3_ACCESS_KEY": s3_server.access_key, "SPROUT_S3_SECRET_KEY": s3_server.secret_key,
           "SPROUT_S3_BUCKET": f"{bucket}-store", "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    settings = Settings(**{k.removeprefix("SPROUT_").lower(): v for k, v in env.items()})
    migrated_services(settings)
    version = register_random_champion(settings)
    proc = subprocess.run([SPROUT, "predict", f"s3://{bucket}/incoming/day 1", "--output",
                           f"s3://{bucket}/scored/day 1/", "--workers", "2", "--low-confidence", "0.7", "--json"],
                          env={k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | env,
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = proc.stdout.splitlines()
    answer = json.loads(line)
    assert (answer["n"], answer["scored"], answer["errors"], answer["model_version"]) == (13, 12, 1, version)
    assert sum(answer["counts"].values()) == 12 and sum(answer["histogram"]["counts"]) == 12
    assert answer["results"] == f"s3://{bucket}/scored/day 1/results.jsonl"
    assert "scoring" not in proc.stderr  # no progress bar when piped
    body = s3.get_object(Bucket=bucket, Key="scored/day 1/results.jsonl")["Body"].read()
    rows = decode_rows(body, "jsonl")
    assert sorted(r["path"] for r in rows) == sorted(
        [f"s3://{bucket}/incoming/day 1/{p.parent.name}/{i % 2}/{p.name}" for i, p in enumerate(files)]
        + [f"s3://{bucket}/incoming/day 1/broken.jpg"])
    report = json.loads(s3.get_object(Bucket=bucket, Key="scored/day 1/report.json")["Body"].read())
    assert report["counts"] == answer["counts"] and report["error_examples"][0]["path"].endswith("broken.jpg")
    assert [r["confidence"] < 0.7 for r in report["low_confidence"]] == [True] * answer["low_confidence"]
    png = s3.get_object(Bucket=bucket, Key="scored/day 1/confidence.png")["Body"].read()
    assert png.startswith(b"\x89PNG")
    run = mlflow.MlflowClient(tracking_uri=settings.resolved_mlflow_uri).get_run(answer["mlflow_run_id"])
    assert run.data.metrics["errors"] == 1 and run.data.params["source"] == f"s3://{bucket}/incoming/day 1"
