"""The batch prediction DAG: its structure (both runners), then a real ``dag.test()`` run against an embedded
home: a folder scored in three mapped shards, merged, reported and logged to MLflow. The same DAG on the real
stack (PostgreSQL, SeaweedFS, MLflow with auth) is in test_full_loop_real_stack.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model.core.settings import Settings
from model.reports.batch import KEY_TAG
from model.serving.batch import decode_rows
from model.serving.registry import Registry
from tests.dags.dag_runs import Driver, check_batch_run, run_dag
from tests.utils.champion import register_random_champion
from tests.utils.images import dataset_images
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow

DAG_ID = "sprout_batch_predict"
EDGES = {"plan_shards": ["shard_args"], "shard_args": ["score_shard"], "score_shard": ["merge_report"],
         "merge_report": []}
REPORT_ARGS = ["batch-report", "--shards", "3", "--format", "csv", "--low-confidence", "0.5",
               "--key", "manual__2026-01-01T00:00:00+00:00", "--", "s3://scored/run 1/"]
# The mapped shards' arguments for the driver's stub plan (two shards, version 4).
SHARD_ARGS = [["predict", "--output", "s3://scored/run 1/", "--shard", f"{i}/2", "--model", "4", "--format", "csv",
               "--", "s3://data/first set"] for i in range(2)]


def test_dag_is_manual_with_source_output_and_shards(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    dag = dagbag["dags"][DAG_ID]
    assert dag["schedule"] is None and dag["catchup"] is False and dag["tags"] == ["sprout"]
    assert dag["params"] == ["format", "low_confidence", "output", "shards", "source"]
    tasks = dag["tasks"]
    assert {task_id: info["downstream"] for task_id, info in tasks.items()} == EDGES
    assert tasks["score_shard"]["mapped"] == "_PythonDecoratedOperator" and tasks["score_shard"]["expand"] == ["args"]
    assert tasks["plan_shards"]["rendered"] == [["batch-plan", "--shards", "3", "--", "s3://data/first set"]]
    assert tasks["merge_report"]["rendered"] == [REPORT_ARGS]
    assert tasks["score_shard"]["rendered"] == SHARD_ARGS


def test_kubernetes_runner_scores_each_shard_in_a_cpu_pod(dagbag_kubernetes: dict[str, Any]) -> None:
    tasks = dagbag_kubernetes["dags"][DAG_ID]["tasks"]
    assert {task_id: info["downstream"] for task_id, info in tasks.items()} == EDGES
    mapped = tasks["score_shard"]
    assert mapped["mapped"] == "KubernetesPodOperator" and mapped["expand"] == ["arguments"]
    assert mapped["pod"]["image"] == "registry.example/sprout:1.2" and not mapped["pod"]["node_selector"]
    assert "nvidia.com/gpu" not in (mapped["pod"]["limits"] or {})
    for task_id in ("plan_shards", "merge_report"):
        assert tasks[task_id]["type"] == "KubernetesPodOperator"
        assert "nvidia.com/gpu" not in (tasks[task_id]["pod"]["limits"] or {})
    assert tasks["merge_report"]["rendered"] == REPORT_ARGS  # the pod's arguments: the CLI's (test_pod_arguments.py)
    assert mapped["rendered"] == SHARD_ARGS


VALID_OUTPUTS = ["s3://scored/run 1/", "/data/scored", "s3://my-bucket.example/a/b=c,d@e+f~g%20_h:i", "/"]
BAD_OUTPUTS = ["scored", "./scored", "-o", "", "s3://Bucket/x", "s3:///x", "/data/../etc", "s3://scored/a/..",
               "/data/x;id", "/data/$(id)", "/data/`id`", "/data/'x'", '/data/"x"', "/data/{{ run_id }}", "/data/*",
               "/data/x\n", "/data/x|sh", "/data/x&", "/data/<x>"]


def test_output_is_an_absolute_folder_or_s3_prefix(driver: Driver) -> None:
    """A trigger (API, UI, dag.test) whose `output` is anything else is refused (the param's pattern)."""
    confs = [{"source": "s3://data/in", "output": output} for output in VALID_OUTPUTS + BAD_OUTPUTS]
    errors = dict(zip(VALID_OUTPUTS + BAD_OUTPUTS, driver("validate", DAG_ID, json.dumps(confs))["errors"],
                      strict=True))
    assert {o: e for o, e in errors.items() if o in VALID_OUTPUTS and e} == {}
    assert [o for o, e in errors.items() if o in BAD_OUTPUTS and not e] == []


def test_a_folder_is_scored_in_mapped_shards_with_a_report(driver: Driver, tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    migrated_services(settings)
    version = register_random_champion(settings)
    source = tmp_path / "incoming"
    for path in dataset_images("dandelion", 5) + dataset_images("grass", 5):
        (source / path.parent.name).mkdir(parents=True, exist_ok=True)
        (source / path.parent.name / path.name).write_bytes(path.read_bytes())
    (source / "broken.jpg").write_bytes(b"%PDF-1.4 nope")
    expected = {str(p) for p in source.rglob("*.jpg")}
    output = tmp_path / "scored"
    result = run_dag(driver, DAG_ID, "2026-04-01T00:00:00+00:00", home=home, conf={
        "source": str(source), "output": str(output), "shards": 3, "format": "csv", "low_confidence": 0.65})
    report = check_batch_run(result, expected, shards=3)
    assert report["model_version"] == version and report["errors"] == 1 and report["scored"] == 10
    rows = decode_rows((output / "results.csv").read_bytes(), "csv")
    assert [r["path"] for r in rows] == sorted(expected)  # merged: each image once
    written = json.loads((output / "report.json").read_text())
    assert written["counts"] == report["counts"] and sum(written["histogram"]["counts"]) == 10
    assert written["low_confidence_below"] == 0.65
    assert [r["path"] for r in written["low_confidence"]] == [
        r["path"] for r in sorted(rows, key=lambda r: (r["confidence"] or 2, r["path"]))
        if r["confidence"] is not None and r["confidence"] < 0.65]
    assert (output / "confidence.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (output / "shards").iterdir()) == [
        f"results-0000{i}-of-00003.csv" for i in range(3)]
    run = Registry.from_settings(settings).client.get_run(report["mlflow_run_id"])
    assert run.data.tags[KEY_TAG] == result["run_id"] and run.data.metrics["scored"] == 10
