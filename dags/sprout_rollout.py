"""
### Sprout: judge the challenger on live traffic

Every few minutes (`SPROUT_ROLLOUT_SCHEDULE`, cron, UTC; default every 5 minutes) one task runs
`sprout --json rollout judge`, locally or as a pod (`SPROUT_TASK_RUNNER`): with a rollout open (a challenger in
shadow or canary, `SPROUT_ROLLOUT`), it reads the live observations the API recorded — both models' answers on the
same images, paired with the reviewers' labels once the images are reviewed — and applies the rule
(`SPROUT_ROLLOUT_*`): **abort** at once on a significant accuracy loss on reviewed live images, an error-rate or a
latency regression (the champion untouched); **promote** once enough live evidence shows the challenger not
significantly worse; at the time-out, the rule's fallback; else **wait**. Without an open rollout it does nothing.
A person can decide instead: `sprout rollout promote|abort --by ADMIN`, or the Models page.
"""

from __future__ import annotations

from airflow.sdk import dag
from sprout_dag_support.cli_tasks import cli_task
from sprout_dag_support.settings import SETTINGS, START_DATE, TAGS


@dag(
    dag_id="sprout_rollout",
    dag_display_name="Sprout: judge the rollout",
    description="Promote or abort the challenger by the rule, on its live evidence (nothing to do without one).",
    schedule=SETTINGS.rollout_schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=SETTINGS.default_args(),
)
def sprout_rollout() -> None:
    cli_task("judge_rollout", ["rollout", "judge"],
             doc="`sprout rollout judge`: the rule's decision on the open rollout — promote, abort or wait.")


sprout_rollout()
