"""What a retrain DAG run did, from Airflow's JSON: recorded answers of a real Airflow (airflow_runs/*.json), and
the same shapes with the states and returned JSON of the other outcomes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from model.runtime.retrain_outcome import RunOutcome, run_outcome, xcoms_needed

RECORDED = Path(__file__).with_name("airflow_runs")


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return data


def outcome_of(run: dict[str, Any]) -> RunOutcome:
    """As airflow_client does: only the returned JSON ``xcoms_needed`` names, each entry's ``value``."""
    tis = run["task_instances"]["task_instances"]
    needed = xcoms_needed(run["dag_run"]["state"], tis)
    xcoms = {task: run["xcom_entries"][task]["value"] for task in needed if task in run["xcom_entries"]}
    return run_outcome(run["dag_run"]["state"], tis, xcoms)


def with_states(run: dict[str, Any], run_state: str, states: dict[str, Any],
                xcoms: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recorded run with other task states (tasks not named keep theirs) and returned JSON."""
    run = copy.deepcopy(run)
    run["dag_run"]["state"] = run_state
    for ti in run["task_instances"]["task_instances"]:
        ti["state"] = states.get(ti["task_id"], ti["state"])
    run["xcom_entries"] = {task: {"key": "return_value", "task_id": task, "value": value}
                           for task, value in (xcoms or {}).items()}
    return run


TRAINED = {"skipped": False, "reason": "passed", "run_id": 7, "mlflow_run_id": "9f2c", "gate": {"passed": True}}
ALL_DONE = dict.fromkeys(("candidate_args", "assess_candidate", "select_candidate", "train_candidate", "evaluate_gate",
                         "promote_candidate", "report"), "success")


def test_a_run_that_stopped_at_the_threshold_is_skipped_with_the_counts_reason() -> None:
    run = recorded("skipped")
    assert run["dag_run"]["state"] == "success"  # what Airflow says
    assert outcome_of(run) == RunOutcome("skipped", reason="only 0 new approved samples, 10 needed")
    assert xcoms_needed("success", run["task_instances"]["task_instances"]) == ["count_new_samples"]


def test_a_failed_run_names_the_task_that_failed_and_needs_no_returned_json() -> None:
    run = recorded("failed")
    assert outcome_of(run) == RunOutcome("failed", task="assess_candidate")  # a mapped task: map_index 0
    assert xcoms_needed("failed", run["task_instances"]["task_instances"]) == []


def test_a_recorded_promoting_run_gives_the_version_its_training_run_and_mlflow_run() -> None:
    run = recorded("promoted")
    assert xcoms_needed("success", run["task_instances"]["task_instances"]) == ["report"]
    assert outcome_of(run) == RunOutcome("promoted", version="2", training_run_id=2,
                                         mlflow_run_id="d7b943dc443047a5a36e9a10e6125baf")


@pytest.mark.parametrize(("name", "expected"), [
    ("queued", RunOutcome("queued")),
    ("running", RunOutcome("running", task="train_candidate")),
    ("running_queued_task", RunOutcome("running", task="train_candidate")),  # its task instance queued
])
def test_recorded_runs_in_progress_name_their_task(name: str, expected: RunOutcome) -> None:
    assert outcome_of(recorded(name)) == expected


def test_a_promoting_run_gives_the_version_and_its_training_run() -> None:
    report = {"decision": "promoted", "run_id": 7, "mlflow_run_id": "9f2c", "version": "4", "gate_reason": "ok"}
    run = with_states(recorded("skipped"), "success", ALL_DONE | {"record_rejection": "skipped"},
                      {"train_candidate": TRAINED, "report": report})
    assert xcoms_needed("success", run["task_instances"]["task_instances"]) == ["report"]
    assert outcome_of(run) == RunOutcome("promoted", version="4", training_run_id=7, mlflow_run_id="9f2c")


def test_a_refused_candidate_gives_the_gates_reason() -> None:
    report = {"decision": "rejected", "run_id": 8, "mlflow_run_id": None, "version": None,
              "gate_reason": "test accuracy 0.71 is 0.05 below the champion's 0.76"}
    run = with_states(recorded("skipped"), "success", ALL_DONE | {"promote_candidate": "skipped"},
                      {"report": report})
    assert outcome_of(run) == RunOutcome("refused", reason=report["gate_reason"], training_run_id=8)


def test_a_candidate_step_that_found_nothing_to_train_is_skipped_with_its_reason() -> None:
    report = {"decision": "skipped", "run_id": None, "gate_reason": "no trainable labels"}
    run = with_states(recorded("skipped"), "success", ALL_DONE, {"report": report})
    assert outcome_of(run) == RunOutcome("skipped", reason="no trainable labels")


@pytest.mark.parametrize(("states", "task"), [
    ({"count_new_samples": "running", "check_enough_samples": None}, "count_new_samples"),
    ({"check_enough_samples": "success", "assess_candidate": "running", "train_candidate": None},
     "assess_candidate"),
    ({"check_enough_samples": "success", "assess_candidate": "up_for_retry"}, "assess_candidate"),
    ({"check_enough_samples": "success", "candidate_args": "success", "assess_candidate": "queued"},
     "assess_candidate"),
])
def test_a_running_run_names_its_running_task(states: dict[str, Any], task: str) -> None:
    base = dict.fromkeys(ALL_DONE) | {"count_new_samples": "success", "record_rejection": None}
    run = with_states(recorded("skipped"), "running", base | states)
    assert outcome_of(run) == RunOutcome("running", task=task)


def test_a_run_after_training_that_failed_keeps_its_training_run() -> None:
    states = ALL_DONE | {"promote_candidate": "failed", "report": "upstream_failed"}
    run = with_states(recorded("failed"), "failed", states, {"train_candidate": TRAINED})
    assert xcoms_needed("failed", run["task_instances"]["task_instances"]) == ["train_candidate"]
    assert outcome_of(run) == RunOutcome("failed", task="promote_candidate", training_run_id=7, mlflow_run_id="9f2c")


def test_a_queued_run_with_no_task_yet_is_queued() -> None:
    assert run_outcome("queued", [], {}) == RunOutcome("queued")
    assert run_outcome("running", [], {}) == RunOutcome("running")
