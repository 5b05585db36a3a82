"""The training DAGs' own tasks (``sprout_retrain``, ``sprout_bootstrap``): the CLI arguments they render, the
candidates to assess, the branch on the gate's decision and the report. Each DAG file wires them itself."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.sdk import TriggerRule, get_current_context, task

log = logging.getLogger(__name__)

# Jinja snippets for the training tasks' CLI arguments (see cli_tasks.RUN_ID_ARG).
FORCE_FLAG = "{{ '--force' if params.force else '' }}"
TRAINED_RUN_ID_ARG = "{{ ti.xcom_pull(task_ids='train_candidate')['run_id'] }}"
WINNER_ARG = "{{ ti.xcom_pull(task_ids='select_candidate')['backbone'] }}"
TRIED_ARG = "{{ ti.xcom_pull(task_ids='select_candidate')['tried'] | tojson }}"
# Every assessed candidate (the mapped ``assess_candidate`` tasks' answers): a list of task ids pulls a list, also
# when only one backbone was tried.
ASSESSED_ARG = "{{ ti.xcom_pull(task_ids=['assess_candidate']) | tojson }}"


@task
def candidate_args(backbones: list[str]) -> list[list[str]]:
    """One ``assess-candidate`` argument list per backbone to try (the mapped tasks' input)."""
    return [["assess-candidate", "--backbone", name] for name in backbones]


@task.branch
def evaluate_gate(outcome: dict[str, Any]) -> list[str]:
    """Branch on the gate's decision, which ``train-candidate`` stored with the run: promote or record."""
    if outcome.get("skipped"):
        log.info("no candidate: %s", outcome.get("reason"))
        return []
    gate = outcome.get("gate") or {}
    accuracy = (outcome.get("metrics") or {}).get("accuracy")
    champion = (outcome.get("champion_metrics") or {}).get("accuracy")
    log.info("candidate run %s: test accuracy %s, champion v%s %s; gate %s: %s", outcome.get("run_id"),
             accuracy, outcome.get("champion_version"), champion,
             "passed" if gate.get("passed") else "refused", gate.get("reason"))
    return ["promote_candidate"] if gate.get("passed") else ["record_rejection"]


@task(trigger_rule=TriggerRule.NONE_FAILED)
def report(outcome: dict[str, Any]) -> dict[str, Any]:
    """Log a summary of the run (decision, versions, metrics) and return it."""
    ti = get_current_context()["ti"]
    promoted = ti.xcom_pull(task_ids="promote_candidate")
    rejected = ti.xcom_pull(task_ids="record_rejection")
    final = promoted or rejected or outcome
    gate = final.get("gate") or {}
    metrics = final.get("metrics") or {}
    champion_metrics = final.get("champion_metrics") or {}
    summary: dict[str, Any] = {
        "decision": "promoted" if promoted else "rejected" if rejected else "skipped",
        "run_id": final.get("run_id"),
        "mlflow_run_id": final.get("mlflow_run_id"),
        "backbone": final.get("backbone"),
        "counts": final.get("counts"),
        "n_embedded": final.get("n_embedded"),
        "gate_passed": gate.get("passed"),
        "gate_reason": gate.get("reason") or final.get("reason"),
        "version": final.get("version"),
        "previous_champion": final.get("champion_version"),
        "champion": final.get("version") if promoted else final.get("champion_version"),
        "metrics": {k: metrics.get(k) for k in ("accuracy", "macro_f1", "log_loss", "n")},
        "champion_metrics": {k: champion_metrics.get(k) for k in ("accuracy", "macro_f1", "log_loss", "n")},
    }
    log.info("sprout training report: %s", json.dumps(summary, default=str))
    if summary["decision"] == "promoted":
        log.info("version %s is the champion (was %s): test accuracy %s vs %s", summary["version"],
                 summary["previous_champion"], summary["metrics"]["accuracy"],
                 summary["champion_metrics"]["accuracy"])
    elif summary["decision"] == "rejected":
        log.warning("candidate run %s rejected, champion stays %s: %s", summary["run_id"],
                    summary["previous_champion"], summary["gate_reason"])
    return summary
