"""The bootstrap DAG: structure, then real runs on one fresh home — a folder import that trains the first
model, an S3-prefix import (SeaweedFS) that only imports because a champion exists, and a bad source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import TrainingRun
from model.core.settings import Settings
from model.data.importer import find_labeled_files
from model.runtime.services import Services
from tests import servers
from tests.dags.dag_runs import Driver, run_dag, states, xcom
from tests.utils.datasets import write_tree
from tests.utils.paths import require_dataset
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow

DAG_ID = "sprout_bootstrap"
TASKS = {"import_dataset", "read_status", "check_no_champion", "train_candidate", "evaluate_gate",
         "promote_candidate", "record_rejection", "report"}
EDGES = {
    "import_dataset": ["read_status"],
    "read_status": ["check_no_champion"],
    "check_no_champion": ["train_candidate"],
    "train_candidate": ["evaluate_gate", "report"],
    "evaluate_gate": ["promote_candidate", "record_rejection"],
    "promote_candidate": ["report"],
    "record_rejection": ["report"],
    "report": [],
}
BUCKET = "datasets"


def test_dag_is_manual_with_a_source_param(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    dag = dagbag["dags"][DAG_ID]
    assert dag["schedule"] is None and dag["timetable"] == "NullTimetable"
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["params"] == ["source"]
    assert {task_id: info["downstream"] for task_id, info in dag["tasks"].items()} == EDGES
    assert dag["tasks"]["import_dataset"]["rendered"] == [["import", "--", "s3://data/first set"]]


def test_kubernetes_runner_passes_the_source_whole_and_trains_on_a_gpu(dagbag_kubernetes: dict[str, Any]) -> None:
    tasks = dagbag_kubernetes["dags"][DAG_ID]["tasks"]
    assert set(tasks) == TASKS
    assert tasks["import_dataset"]["rendered"] == ["import", "--", "s3://data/first set"]  # the CLI's arguments
    assert "nvidia.com/gpu" not in tasks["import_dataset"]["pod"]["limits"]
    assert tasks["train_candidate"]["type"] == "KubernetesPodOperator"
    assert tasks["train_candidate"]["pod"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh home, a small first data set (a folder) and a disjoint second one (for S3)."""
    base = tmp_path_factory.mktemp("bootstrap")
    files = find_labeled_files(require_dataset())
    first, second = files[1::5], files[3::20]  # 4 of the 64 first ones fall in the test split
    assert not set(first) & set(second)
    return {"home": base / "home", "folder": write_tree(first, base / "first"), "first": first, "second": second,
            "svc": migrated_services(Settings(home=base / "home"))}


def count_runs(svc: Services) -> int:
    with svc.session() as session:
        return int(session.scalar(select(func.count(TrainingRun.id))) or 0)


def test_bootstrap_from_a_folder_trains_the_first_model(bootstrap: dict[str, Any], driver: Driver) -> None:
    result = run_dag(driver, DAG_ID, "2026-04-01T00:00:00+00:00", home=bootstrap["home"],
                     conf={"source": str(bootstrap["folder"])})
    assert result["state"] == "success", result["log"]
    assert states(result) == dict.fromkeys(TASKS, "success") | {"record_rejection": "skipped"}
    imported = xcom(result, "import_dataset")
    assert imported["added"] == len(bootstrap["first"]) and imported["errors"] == []
    assert xcom(result, "read_status")["champion"] is None
    trained = xcom(result, "train_candidate")
    assert trained["gate"]["passed"] and trained["champion_version"] is None
    assert xcom(result, "promote_candidate")["version"] == "1"
    assert xcom(result, "report")["champion"] == "1"
    assert bootstrap["svc"].registry.champion().version == "1"


def test_bootstrap_from_an_s3_prefix_only_imports_when_a_champion_exists(
    bootstrap: dict[str, Any], driver: Driver, s3_server: servers.S3Server,
) -> None:
    client = s3_server.client()
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    prefix = "sets/more"
    already = bootstrap["first"][:3]  # duplicates of the first import: skipped, not added twice
    for label, path in [*bootstrap["second"], *already]:
        client.fput_object(BUCKET, f"{prefix}/{label}/{path.name}", str(path))
    client.fput_object(BUCKET, f"{prefix}/README.txt", str(already[0][1]))  # not in a label folder: ignored
    runs = count_runs(bootstrap["svc"])
    result = run_dag(driver, DAG_ID, "2026-04-02T00:00:00+00:00", home=bootstrap["home"],
                     conf={"source": f"s3://{BUCKET}/{prefix}"},
                     env={"AWS_ENDPOINT_URL": s3_server.url, "AWS_ACCESS_KEY_ID": s3_server.access_key,
                          "AWS_SECRET_ACCESS_KEY": s3_server.secret_key, "AWS_DEFAULT_REGION": "us-east-1"})
    assert result["state"] == "success", result["log"]
    ran = {"import_dataset", "read_status", "check_no_champion"}
    assert states(result) == dict.fromkeys(ran, "success") | dict.fromkeys(TASKS - ran, "skipped")
    imported = xcom(result, "import_dataset")
    assert imported["added"] == len(bootstrap["second"]) and imported["skipped_duplicates"] == len(already)
    labels = {label for label, _ in bootstrap["second"]}
    assert set(imported["added_by_label"]) == labels == {"dandelion", "grass"}
    assert xcom(result, "read_status")["champion"]["version"] == "1"
    assert count_runs(bootstrap["svc"]) == runs
    assert bootstrap["svc"].registry.champion().version == "1"


def test_a_bad_source_fails_the_run_without_retrying(bootstrap: dict[str, Any], driver: Driver,
                                                     tmp_path: Path) -> None:
    """A final CLI error (no such folder) fails the task at once, although retries are configured."""
    result = run_dag(driver, DAG_ID, "2026-04-03T00:00:00+00:00", home=bootstrap["home"],
                     conf={"source": str(tmp_path / "missing")},
                     env={"SPROUT_TASK_RETRIES": "2", "SPROUT_TASK_RETRY_DELAY_SECONDS": "1"})
    assert result["state"] == "failed"
    assert result["tasks"]["import_dataset"]["state"] == "failed"
    assert result["tasks"]["import_dataset"]["try_number"] == 1
    assert states(result)["read_status"] == "upstream_failed"
    assert "Not a directory" in result["log"]
