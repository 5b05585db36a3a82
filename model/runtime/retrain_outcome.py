"""What a run of the retrain DAG did, from what Airflow reports of it: its state, its task instances and the JSON
its tasks returned (XCom ``return_value``). Airflow calls a run that stopped at ``check_enough_samples`` a
"success"; this says it was skipped, and why. Pure: ``airflow_client`` fetches the data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["queued", "running", "skipped", "promoted", "refused", "failed"]

# The retrain DAG's tasks whose JSON tells the outcome (dags/sprout_retrain.py).
COUNT_TASK, TRAIN_TASK, REPORT_TASK = "count_new_samples", "train_candidate", "report"
ACTIVE = ("running", "deferred", "up_for_retry", "up_for_reschedule", "restarting", "queued", "scheduled")
FAILED = ("failed", "upstream_failed")


@dataclass(frozen=True)
class RunOutcome:
    """A retrain DAG run in Sprout's words: ``task`` is the task running (``running``) or that failed (``failed``);
    ``reason`` why it skipped training or the gate refused; the Sprout training run and the version it promoted."""

    outcome: Outcome
    reason: str | None = None
    task: str | None = None
    training_run_id: int | None = None
    mlflow_run_id: str | None = None
    version: str | None = None


def task_states(task_instances: Iterable[Mapping[str, Any]]) -> dict[str, list[str | None]]:
    """Each task's states (a mapped task has one task instance per index), in Airflow's order."""
    states: dict[str, list[str | None]] = {}
    for ti in task_instances:
        states.setdefault(str(ti["task_id"]), []).append(ti.get("state"))
    return states


def xcoms_needed(run_state: str | None, task_instances: Iterable[Mapping[str, Any]]) -> list[str]:
    """The tasks whose returned JSON the outcome needs (few calls): the report of a finished training, else the
    trained candidate, else the sample count of a run that stopped before training."""
    states = task_states(task_instances)

    def succeeded(task: str) -> bool:
        return "success" in states.get(task, [])

    if succeeded(REPORT_TASK):
        return [REPORT_TASK]
    if succeeded(TRAIN_TASK):
        return [TRAIN_TASK]
    if run_state == "success" and succeeded(COUNT_TASK):
        return [COUNT_TASK]
    return []


def _first(states: dict[str, list[str | None]], wanted: tuple[str, ...]) -> str | None:
    for want in wanted:  # a running task before a queued one
        for task, task_states_ in states.items():
            if want in task_states_:
                return task
    return None


def run_outcome(run_state: str | None, task_instances: Iterable[Mapping[str, Any]],
                xcoms: Mapping[str, Any]) -> RunOutcome:
    """The outcome of one DAG run: ``xcoms`` maps a task id to its returned JSON (those ``xcoms_needed`` named)."""
    task_instances = list(task_instances)
    states = task_states(task_instances)
    trained = xcoms.get(REPORT_TASK) or xcoms.get(TRAIN_TASK) or {}
    training = {"training_run_id": trained.get("run_id"), "mlflow_run_id": trained.get("mlflow_run_id")}
    if run_state in (None, "queued") and not states:
        return RunOutcome("queued")
    if run_state == "failed":
        return RunOutcome("failed", task=_first(states, ("failed", "upstream_failed")), **training)
    if run_state != "success":
        task = _first(states, ACTIVE)
        return RunOutcome("queued" if run_state == "queued" else "running", task=task, **training)
    report = xcoms.get(REPORT_TASK)
    if report and report.get("decision") == "promoted":
        return RunOutcome("promoted", version=report.get("version"), **training)
    if report and report.get("decision") == "rejected":
        return RunOutcome("refused", reason=report.get("gate_reason"), **training)
    if report or trained:  # the candidate step itself found nothing to train
        return RunOutcome("skipped", reason=(report or trained).get("gate_reason") or trained.get("reason"),
                          **training)
    count = xcoms.get(COUNT_TASK) or {}
    return RunOutcome("skipped", reason=count.get("reason"))
