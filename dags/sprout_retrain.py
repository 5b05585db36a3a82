"""
### Sprout: retrain when enough new samples were approved

Weekly by default (`SPROUT_RETRAIN_SCHEDULE`, a preset or a cron expression, UTC) OR as soon as the API
announces enough new approvals (an event on the asset `SPROUT_RETRAIN_ASSET`). Each task runs one
`sprout --json` subcommand, locally or as a pod (`SPROUT_TASK_RUNNER`), and passes on its JSON:

1. **count_new_samples** — `sprout retrain-check`: samples approved since the last training run.
2. **check_enough_samples** — stops the run (the rest is skipped) below `SPROUT_MIN_NEW_SAMPLES`,
   unless the run was triggered with `force`.
3. **assess_candidate** — one mapped task per backbone of `SPROUT_CANDIDATE_BACKBONES` (dynamic task
   mapping; a GPU pod each on Kubernetes): `sprout assess-candidate --backbone B` embeds (cached) and
   cross-validates that backbone's candidate. **select_candidate** — `sprout select-candidate`: the rule that
   picks among them (the lowest cross-validated log loss), the one the CLI's `sprout train` uses too.
4. **train_candidate** — `sprout train-candidate --key <run id> --backbone <winner>`: the final head, its
   evaluation and evidence, the gate's decision; a retry or a cleared run returns the run that key trained.
5. **evaluate_gate** — branches on that decision.
6. **promote_candidate** — `sprout promote RUN`: registers the candidate once and moves `champion`;
   **record_rejection** — `sprout gate RUN`: the refused candidate's stored reason.
7. **report** — logs the decision, the versions and the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from sprout_dag_support.cli_tasks import RUN_ID_ARG, cli_task, mapped_cli_task
from sprout_dag_support.settings import SETTINGS, START_DATE, TAGS
from sprout_dag_support.training import (
    ASSESSED_ARG,
    FORCE_FLAG,
    TRAINED_RUN_ID_ARG,
    TRIED_ARG,
    WINNER_ARG,
    candidate_args,
    evaluate_gate,
    report,
)

log = logging.getLogger(__name__)


@task.short_circuit
def check_enough_samples(check: dict[str, Any]) -> bool:
    """Go on only if `retrain-check` says a retrain is due (or the run was triggered with `force`)."""
    log.info("%s", check.get("reason"))
    if get_current_context()["params"].get("force"):
        log.info("forced: training anyway")
        return True
    return bool(check.get("due"))


@dag(
    dag_id="sprout_retrain",
    dag_display_name="Sprout: retrain",
    description="Train a candidate on newly approved samples, gate it, promote it or record the rejection.",
    schedule=SETTINGS.retrain_timetable(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=SETTINGS.default_args(),
    params={"force": Param(False, type="boolean", description="Train even with too few new samples.")},
)
def sprout_retrain() -> None:
    count = cli_task("count_new_samples", ["retrain-check", "--key", RUN_ID_ARG],
                     doc="`sprout retrain-check`: samples approved since the last training run.")
    enough = check_enough_samples(count.output)
    backbones = candidate_args(list(SETTINGS.candidate_backbones))
    assessed = mapped_cli_task("assess_candidate", backbones, gpu=True,
                               doc="`sprout assess-candidate --backbone B`: embed (cached) and cross-validate one "
                                   "backbone's candidate; one mapped task (pod) per backbone.")
    selected = cli_task("select_candidate", ["select-candidate", "--assessed", ASSESSED_ARG],
                        doc="`sprout select-candidate`: the backbone whose candidate wins, and every one tried.")
    trained = cli_task("train_candidate", ["train-candidate", "--key", RUN_ID_ARG, FORCE_FLAG, "--backbone",
                                           WINNER_ARG, "--tried", TRIED_ARG], gpu=True,
                       doc="`sprout train-candidate --backbone WINNER`: the final head, evaluation and gate "
                           "(idempotent per run id).")
    decision = evaluate_gate(trained.output)
    promote = cli_task("promote_candidate", ["promote", TRAINED_RUN_ID_ARG],
                       doc="Register the gate-passed candidate (once) and move the `champion` alias to it.")
    reject = cli_task("record_rejection", ["gate", TRAINED_RUN_ID_ARG],
                      doc="Read back the refused candidate's stored gate decision and reason (`sprout gate`).")
    summary = report(trained.output)

    enough >> backbones
    assessed >> selected >> trained
    decision >> [promote, reject] >> summary


sprout_retrain()
