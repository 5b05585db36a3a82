"""
### Sprout: enforce the retention rules

Once a day (`SPROUT_GC_SCHEDULE`, cron, UTC; default 03:17) one task runs `sprout --json gc --apply`, locally or as
a pod (`SPROUT_TASK_RUNNER`): recent predictions beyond the drift window, revocations of expired tokens, ended
rollouts' observations, old unregistered runs' lineage and out-of-fold probabilities, old rejected samples nothing
refers to, and embeddings and objects no sample has are deleted (`SPROUT_RETAIN_*`, `SPROUT_GC_ORPHAN_GRACE_HOURS`);
nothing still referenced ever is. The task's JSON says what each rule found and deleted. The table of what grows
and why the rest is kept: docs/operations/retention.md.
"""

from __future__ import annotations

from airflow.sdk import dag
from sprout_dag_support.cli_tasks import cli_task
from sprout_dag_support.settings import SETTINGS, START_DATE, TAGS


@dag(
    dag_id="sprout_gc",
    dag_display_name="Sprout: enforce retention",
    description="Delete what the retention rules say may go (sprout gc --apply); nothing still referenced.",
    schedule=SETTINGS.gc_schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=SETTINGS.default_args(),
)
def sprout_gc() -> None:
    cli_task("collect_garbage", ["gc", "--apply"],
             doc="`sprout gc --apply`: delete what the retention rules find; its JSON reports each rule.")


sprout_gc()
