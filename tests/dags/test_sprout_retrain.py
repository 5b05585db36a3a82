"""The retrain DAG: its structure (both runners), then real ``dag.test()`` runs against an embedded home.

The runs share one home and build on each other, in file order: version 1 trained by the fixture;
9 approvals → skipped; the 10th → candidate trained, gate passed, version 2 promoted; the same run again
→ nothing new; mislabeled copies → a worse candidate, rejected; that run again → still not promoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.models import ReviewAction, SampleSource, TrainingRun
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import add_sample
from model.learning.promotion import train
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.dags.dag_runs import Driver, run_dag, states, xcom
from tests.utils.datasets import add_mislabeled_copies, split_files, write_tree
from tests.utils.paths import require_dataset
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow

DAG_ID = "sprout_retrain"
TASKS = {"count_new_samples", "check_enough_samples", "candidate_args", "assess_candidate", "select_candidate",
         "train_candidate", "evaluate_gate", "promote_candidate", "record_rejection", "report"}
EDGES = {
    "count_new_samples": ["check_enough_samples"],
    "check_enough_samples": ["candidate_args"],
    "candidate_args": ["assess_candidate"],
    "assess_candidate": ["select_candidate"],
    "select_candidate": ["train_candidate"],
    "train_candidate": ["evaluate_gate", "report"],
    "evaluate_gate": ["promote_candidate", "record_rejection"],
    "promote_candidate": ["report"],
    "record_rejection": ["report"],
    "report": [],
}
PROMOTED = {"count_new_samples": "success", "check_enough_samples": "success", "candidate_args": "success",
            "assess_candidate": "success", "select_candidate": "success", "train_candidate": "success",
            "evaluate_gate": "success", "promote_candidate": "success", "record_rejection": "skipped",
            "report": "success"}
REJECTED = PROMOTED | {"promote_candidate": "skipped", "record_rejection": "success"}
GATE_ONLY_VS_CHAMPION = {"SPROUT_GATE_MIN_ACCURACY": "0"}  # only the comparison with the champion refuses


# --------------------------------------------------------------------------- structure


def test_dag_parses_with_schedule_and_run_limits(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    assert dagbag["files"] == ["sprout_batch_predict.py", "sprout_bootstrap.py", "sprout_gc.py", "sprout_retrain.py",
                               "sprout_rollout.py"]  # no helpers
    dag = dagbag["dags"][DAG_ID]
    assert dag["fileloc"].endswith(f"dags/{DAG_ID}.py")
    assert dag["timetable"] == "AssetOrTimeSchedule"  # weekly OR the API's announcement of new approvals
    assert dag["cron"] == "0 0 * * 0" and dag["assets"] == ["sprout_approved_samples"]
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["tags"] == ["sprout"] and dag["params"] == ["force"]


def test_tasks_and_dependencies(dagbag: dict[str, Any]) -> None:
    tasks = dagbag["dags"][DAG_ID]["tasks"]
    assert set(tasks) == TASKS
    assert {task_id: info["downstream"] for task_id, info in tasks.items()} == EDGES
    assert tasks["check_enough_samples"]["type"] == "_ShortCircuitDecoratedOperator"
    assert tasks["evaluate_gate"]["type"] == "_BranchPythonDecoratedOperator"
    assert tasks["report"]["trigger_rule"] == "none_failed"  # after whichever branch ran
    for info in tasks.values():
        assert info["retries"] == 0  # SPROUT_TASK_RETRIES=0 in the tests; 2 by default
        assert info["retry_exponential_backoff"] and info["max_retry_delay"] == "0:30:00"
    assert tasks["train_candidate"]["execution_timeout"] == "2:00:00"
    assert tasks["assess_candidate"]["mapped"] == "_PythonDecoratedOperator"  # dynamic task mapping
    assert tasks["assess_candidate"]["expand"] == ["args"]


def test_local_runner_runs_the_cli_keyed_on_the_run_id(dagbag: dict[str, Any]) -> None:
    tasks = dagbag["dags"][DAG_ID]["tasks"]
    assert tasks["count_new_samples"]["rendered"] == [["retrain-check", "--key", "manual__2026-01-01T00:00:00+00:00"]]
    tried = '[{"backbone": "efficientnet_lite0", "log_loss": 0.2}, {"backbone": "efficientnet_lite1", "log_loss": 0.1}]'
    assert tasks["train_candidate"]["rendered"] == [
        ["train-candidate", "--key", "manual__2026-01-01T00:00:00+00:00", "--force", "--backbone",
         "efficientnet_lite1", "--tried", tried]]
    assert tasks["candidate_args"]["op_args"] == [["efficientnet_lite0", "efficientnet_lite1"]]  # the setting
    assert tasks["select_candidate"]["rendered"] == [["select-candidate", "--assessed", tried]]  # every assessed
    assert tasks["promote_candidate"]["rendered"] == [["promote", "7"]]
    assert tasks["record_rejection"]["rendered"] == [["gate", "7"]]


def test_kubernetes_runner_trains_in_a_gpu_pod(dagbag_kubernetes: dict[str, Any]) -> None:
    assert dagbag_kubernetes["import_errors"] == {}
    dag = dagbag_kubernetes["dags"][DAG_ID]
    assert dag["cron"] == "0 3 * * 1" and dag["assets"] == ["sprout_approved_samples"]  # SPROUT_RETRAIN_SCHEDULE
    tasks = dag["tasks"]
    assert {task_id: info["downstream"] for task_id, info in tasks.items()} == EDGES
    pods = {task_id for task_id, info in tasks.items() if info["type"] == "KubernetesPodOperator"}
    assert pods == {"count_new_samples", "select_candidate", "train_candidate", "promote_candidate",
                    "record_rejection"}
    mapped = tasks["assess_candidate"]  # one GPU pod per backbone
    assert mapped["mapped"] == "KubernetesPodOperator" and mapped["expand"] == ["arguments"]
    assert mapped["pod"]["limits"]["nvidia.com/gpu"] == "1" and mapped["pod"]["image"] == "registry.example/sprout:1.2"
    train_pod = tasks["train_candidate"]["pod"]
    assert train_pod["image"] == "registry.example/sprout:1.2" and train_pod["namespace"] == "ml"
    assert train_pod["limits"]["nvidia.com/gpu"] == "1"
    assert train_pod["node_selector"] == {"cloud.example/accelerator": "l4"}
    assert [(t["key"], t["effect"], t["toleration_seconds"]) for t in train_pod["tolerations"]] == [
        ("nvidia.com/gpu", "NoSchedule", None), ("spot", "NoExecute", 60)]
    assert train_pod["do_xcom_push"] is True
    tried = '[{"backbone": "efficientnet_lite0", "log_loss": 0.2}, {"backbone": "efficientnet_lite1", "log_loss": 0.1}]'
    assert tasks["train_candidate"]["rendered"] == [  # the pod's arguments: the CLI's (test_pod_arguments.py)
        "train-candidate", "--key", "manual__2026-01-01T00:00:00+00:00", "--force", "--backbone", "efficientnet_lite1",
        "--tried", tried]
    for task_id in pods - {"train_candidate"}:
        assert "nvidia.com/gpu" not in (tasks[task_id]["pod"]["limits"] or {}), task_id
        assert not tasks[task_id]["pod"]["node_selector"], task_id
    assert tasks["promote_candidate"]["rendered"] == ["promote", "7"]
    assert mapped["rendered"] == [["assess-candidate", "--backbone", "efficientnet_lite0"],
                                  ["assess-candidate", "--backbone", "efficientnet_lite1"]]
    assert all(info["retries"] == 3 for info in tasks.values())


# --------------------------------------------------------------------------- runs


def test_an_outage_is_retried_and_then_fails_the_run(driver: Driver, tmp_path: Path) -> None:
    """A CLI error that a retry can cure (storage unreachable) is retried; dag.test() reports the failure
    in the run's state, not by raising."""
    fake = tmp_path / "sprout"
    fake.write_text('#!/bin/sh\necho "object store unreachable" >&2\n'
                    'echo \'{"error": "object store unreachable", "type": "StorageUnavailableError"}\'\nexit 1\n')
    fake.chmod(0o755)
    result = run_dag(driver, DAG_ID, "2026-02-23T00:00:00+00:00", home=tmp_path / "home",
                     env={"SPROUT_CLI": str(fake), "SPROUT_TASK_RETRIES": "1", "SPROUT_TASK_RETRY_DELAY_SECONDS": "1"})
    assert result["state"] == "failed"
    assert result["tasks"]["count_new_samples"]["state"] == "failed"
    assert result["tasks"]["count_new_samples"]["try_number"] == 2  # tried, retried once, failed
    assert states(result)["check_enough_samples"] == "upstream_failed"
    assert "object store unreachable" in result["log"]


def count_runs(svc: Services) -> int:
    with svc.session() as session:
        return int(session.scalar(select(func.count(TrainingRun.id))) or 0)


def run_by_key(svc: Services, key: str) -> TrainingRun:
    with svc.session() as session:
        run = session.scalar(select(TrainingRun).where(TrainingRun.trigger_key == key))
        assert run is not None, f"no training run keyed {key}"
        session.expunge(run)
        return run


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with a quarter of the shared set imported and version 1 trained; 10 more images pending."""
    base = tmp_path_factory.mktemp("retrain")
    initial, held_out = split_files(require_dataset(), held_out=10)
    tree = write_tree(initial[::4], base / "initial")
    svc = migrated_services(Settings(home=base / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, tree)
        pending = [add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.UPLOAD)[0].id
                   for _label, path in held_out]
    first = train(svc)
    assert first.promoted and first.version == "1", first
    return {"svc": svc, "home": base / "home", "pending": list(zip(pending, [lb for lb, _ in held_out],
                                                                     strict=True))}


def approve(loop: dict[str, Any], n: int) -> None:
    svc = loop["svc"]
    with svc.session() as session:
        for sample_id, label in loop["pending"][:n]:
            review_sample(session, svc.store, sample_id=sample_id, action=ReviewAction.APPROVE, label=label,
                          reviewer="alice")
    del loop["pending"][:n]


def test_nine_new_approvals_skip_training(loop: dict[str, Any], driver: Driver) -> None:
    svc = loop["svc"]
    approve(loop, 9)
    runs = count_runs(svc)
    result = run_dag(driver, DAG_ID, "2026-03-02T00:00:00+00:00", home=loop["home"])
    assert result["state"] == "success", result["log"]
    ran = {"count_new_samples", "check_enough_samples"}
    assert states(result) == dict.fromkeys(ran, "success") | dict.fromkeys(TASKS - ran, "skipped")
    check = xcom(result, "count_new_samples")
    assert check["new_approved"] == 9 and check["min_new_samples"] == 10 and check["due"] is False
    assert count_runs(svc) == runs  # nothing trained, nothing recorded
    assert svc.registry.champion().version == "1"


def test_ten_new_approvals_train_gate_and_promote(loop: dict[str, Any], driver: Driver) -> None:
    svc = loop["svc"]
    approve(loop, 1)
    result = run_dag(driver, DAG_ID, "2026-03-09T00:00:00+00:00", home=loop["home"])
    assert result["state"] == "success", result["log"]
    assert states(result) == PROMOTED
    assert xcom(result, "count_new_samples")["new_approved"] == 10
    trained = xcom(result, "train_candidate")
    assert not trained["skipped"] and trained["gate"]["passed"], trained
    embedded = {c["backbone"]: c["n_embedded"] for c in trained["candidates"]}  # one mapped task each
    assert set(embedded) == {"efficientnet_lite0", "efficientnet_lite1"}, trained["candidates"]
    assert embedded["efficientnet_lite0"] == 10, embedded  # only the new images; the rest come from the cache
    assert trained["backbone"] == min(trained["candidates"], key=lambda c: c["log_loss"])["backbone"]
    assert trained["champion_version"] == "1" and trained["version"] is None  # trained, not yet registered
    promoted = xcom(result, "promote_candidate")
    assert promoted["run_id"] == trained["run_id"] and promoted["version"] == "2" and promoted["promoted"]
    summary = xcom(result, "report")
    assert summary["decision"] == "promoted" and summary["champion"] == "2" and summary["previous_champion"] == "1"
    assert summary["metrics"]["accuracy"] == trained["metrics"]["accuracy"]
    assert svc.registry.champion().version == "2"
    run = run_by_key(svc, result["run_id"])
    assert run.id == trained["run_id"] and run.registered_version == "2" and run.promoted
    loop["promoted_run"] = result


def test_rerunning_a_promoted_run_trains_and_registers_nothing_new(loop: dict[str, Any], driver: Driver) -> None:
    """The same DAG run again (cleared, forced past the short-circuit): same candidate, same version."""
    svc, before = loop["svc"], loop["promoted_run"]
    runs, versions = count_runs(svc), len(svc.registry.versions())
    result = run_dag(driver, DAG_ID, "2026-03-09T00:00:00+00:00", home=loop["home"], conf={"force": True})
    assert result["run_id"] == before["run_id"]
    assert result["state"] == "success", result["log"]
    assert states(result) == PROMOTED
    assert xcom(result, "count_new_samples")["new_approved"] == 0
    assert xcom(result, "train_candidate")["run_id"] == xcom(before, "train_candidate")["run_id"]
    assert xcom(result, "promote_candidate")["version"] == "2"
    assert count_runs(svc) == runs and len(svc.registry.versions()) == versions
    assert svc.registry.champion().version == "2"


def test_worse_candidate_is_rejected_and_champion_unchanged(loop: dict[str, Any], driver: Driver) -> None:
    svc = loop["svc"]
    add_mislabeled_copies(svc)
    versions = len(svc.registry.versions())
    result = run_dag(driver, DAG_ID, "2026-03-16T00:00:00+00:00", home=loop["home"], env=GATE_ONLY_VS_CHAMPION)
    assert result["state"] == "success", result["log"]
    assert states(result) == REJECTED
    trained = xcom(result, "train_candidate")
    assert trained["gate"]["passed"] is False and "champion" in trained["gate"]["reason"], trained["gate"]
    assert trained["metrics"]["accuracy"] < trained["champion_metrics"]["accuracy"]
    recorded = xcom(result, "record_rejection")
    assert recorded["run_id"] == trained["run_id"] and recorded["gate"] == trained["gate"]
    assert recorded["version"] is None and not recorded["promoted"]
    summary = xcom(result, "report")
    assert summary["decision"] == "rejected" and summary["champion"] == "2"
    assert summary["gate_reason"] == trained["gate"]["reason"]
    assert svc.registry.champion().version == "2"
    assert len(svc.registry.versions()) == versions  # a refused candidate is registered nowhere
    run = run_by_key(svc, result["run_id"])
    assert run.gate_passed is False and "champion" in (run.gate_reason or "")
    assert run.registered_version is None and not run.promoted
    loop["rejected_run"] = result


def test_rerunning_a_rejected_run_never_promotes_it(loop: dict[str, Any], driver: Driver) -> None:
    svc, before = loop["svc"], loop["rejected_run"]
    runs, versions = count_runs(svc), len(svc.registry.versions())
    result = run_dag(driver, DAG_ID, "2026-03-16T00:00:00+00:00", home=loop["home"], conf={"force": True},
                     env=GATE_ONLY_VS_CHAMPION)
    assert result["run_id"] == before["run_id"]
    assert result["state"] == "success", result["log"]
    assert states(result) == REJECTED
    assert xcom(result, "train_candidate")["run_id"] == xcom(before, "train_candidate")["run_id"]
    assert count_runs(svc) == runs and len(svc.registry.versions()) == versions
    assert svc.registry.champion().version == "2"

