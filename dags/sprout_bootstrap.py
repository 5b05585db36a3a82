"""
### Sprout: import an initial data set and train the first model

Triggered by hand (no schedule). The `source` parameter is a folder-per-label tree — a folder the
`sprout` CLI can read, or an S3 prefix `s3://bucket/prefix` — and defaults to `SPROUT_SEED_DATASET`.

1. **import_dataset** — `sprout import SOURCE`: approved samples, deduplicated by content hash
   (importing the same set again adds nothing).
2. **read_status** — `sprout status`: is there a champion already?
3. **check_no_champion** — when there is one, the run stops here: bootstrapping only imports.
4. **train_candidate** — `sprout train-candidate --force --key <run id>` (GPU pod on Kubernetes),
   then **evaluate_gate** → **promote_candidate** | **record_rejection** → **report**, as in
   `sprout_retrain`: the first model must clearly beat the trivial baseline (and any
   `SPROUT_GATE_MIN_ACCURACY` the operator set).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Param, dag, task
from sprout_dag_support.cli_tasks import RUN_ID_ARG, cli_task
from sprout_dag_support.settings import SETTINGS, START_DATE, TAGS
from sprout_dag_support.training import TRAINED_RUN_ID_ARG, evaluate_gate, report

log = logging.getLogger(__name__)


@task.short_circuit
def check_no_champion(status: dict[str, Any]) -> bool:
    """Go on to training only when no model has been promoted yet."""
    champion = status.get("champion")
    if champion:
        log.info("champion already exists (version %s): nothing to train", champion.get("version"))
        return False
    log.info("no champion yet; %s approved samples", (status.get("samples") or {}).get("approved"))
    return True


@dag(
    dag_id="sprout_bootstrap",
    dag_display_name="Sprout: bootstrap",
    description="Import an initial data set (folder or S3 prefix) and train the first model if none exists.",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=SETTINGS.default_args(),
    params={"source": Param(SETTINGS.seed_dataset, type="string", minLength=1,
                            description="Folder with one sub-folder per label, or s3://bucket/prefix.")},
)
def sprout_bootstrap() -> None:
    imported = cli_task("import_dataset", ["import", "--", "{{ params.source }}"],
                        doc="`sprout import SOURCE`: the data set as approved samples (deduplicated).")
    status = cli_task("read_status", ["status"], doc="`sprout status`: sample counts and the champion.")
    ready = check_no_champion(status.output)
    trained = cli_task("train_candidate", ["train-candidate", "--force", "--key", RUN_ID_ARG], gpu=True,
                       doc="`sprout train-candidate --force`: train and gate the first model (idempotent per run id).")
    decision = evaluate_gate(trained.output)
    promote = cli_task("promote_candidate", ["promote", TRAINED_RUN_ID_ARG],
                       doc="Register the gate-passed first model (once) and make it the `champion`.")
    reject = cli_task("record_rejection", ["gate", TRAINED_RUN_ID_ARG],
                      doc="Read back the refused candidate's stored gate decision and reason (`sprout gate`).")
    summary = report(trained.output)

    imported >> status
    ready >> trained
    decision >> [promote, reject] >> summary


sprout_bootstrap()
