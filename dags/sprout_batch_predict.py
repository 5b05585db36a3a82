"""
### Sprout: score a folder or S3 prefix of images in parallel (batch prediction)

Triggered by hand (no schedule) with `source` (a folder the `sprout` CLI can read, or `s3://bucket/prefix`),
`output` (an absolute folder or `s3://bucket/prefix/`, checked against `OUTPUT_PATTERN` when the run is
triggered), `shards`, `format` (`jsonl` or `csv`) and `low_confidence`.
Each task runs one `sprout --json` subcommand, locally or as a pod (`SPROUT_TASK_RUNNER`):

1. **plan_shards** — `sprout batch-plan SOURCE --shards N`: how many images each shard holds (a shard is
   the paths whose SHA-256 is I modulo N), and the champion's version, pinned for every shard.
2. **shard_args** — one `sprout predict` argument list per shard.
3. **score_shard** — one mapped task per shard (a pod each on Kubernetes): `sprout predict SOURCE
   --shard I/N --model V --output OUTPUT` writes `OUTPUT/shards/results-I-of-N.FMT`; a retry rewrites it.
4. **merge_report** — `sprout batch-report OUTPUT --shards N --key <run id>`: merges the shards into
   `OUTPUT/results.FMT` and writes `report.json` (counts per label, the low-confidence list, a confidence
   histogram) and `confidence.png` beside it, logged as one MLflow run per DAG run (experiment
   `<SPROUT_MLFLOW_EXPERIMENT>-batch`).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from sprout_dag_support.cli_tasks import RUN_ID_ARG, cli_task, mapped_cli_task
from sprout_dag_support.settings import SETTINGS, START_DATE, TAGS

log = logging.getLogger(__name__)

# What `output` may be (checked when a run is triggered): an absolute folder or an S3 bucket and prefix, without a
# `..` segment, of letters, digits, spaces and `._-+=@,:~%` (no quotes, no shell or glob characters, no newline).
OUTPUT_PATTERN = (r"^(?!.*\n)(?!.*/\.\.(/|$))"
                  r"(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[\w .,:=@+~%-]*)*|(/[\w .,:=@+~%-]*)+)$")


@task
def shard_args(plan: dict[str, Any]) -> list[list[str]]:
    """One `sprout predict` argument list per shard of the plan, all with the plan's model version."""
    params = get_current_context()["params"]
    if not plan.get("shards"):
        raise AirflowFailException(f"nothing to score: {plan}")
    log.info("%s images in %s shards %s, model version %s", plan["n"], len(plan["shards"]),
             [s["n"] for s in plan["shards"]], plan["model_version"])
    return [["predict", "--output", params["output"], "--shard", s["shard"], "--model", str(plan["model_version"]),
             "--format", params["format"], "--", params["source"]] for s in plan["shards"]]


@dag(
    dag_id="sprout_batch_predict",
    dag_display_name="Sprout: batch predict",
    description="Score every image of a folder or S3 prefix with the champion, in mapped shards, with a report.",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=TAGS,
    doc_md=__doc__,
    default_args=SETTINGS.default_args(),
    params={
        "source": Param(type="string", minLength=1, description="Folder of images, or s3://bucket/prefix."),
        "output": Param(type="string", minLength=1, pattern=OUTPUT_PATTERN,
                        description="Absolute folder or s3://bucket/prefix/ for the results and the report."),
        "shards": Param(4, type="integer", minimum=1, maximum=256, description="Parallel shards (mapped tasks)."),
        "format": Param("jsonl", enum=["jsonl", "csv"], description="Results file format."),
        "low_confidence": Param(0.6, type="number", minimum=0, maximum=1,
                                description="The report lists the images below this confidence."),
    },
)
def sprout_batch_predict() -> None:
    plan = cli_task("plan_shards", ["batch-plan", "--shards", "{{ params.shards }}", "--", "{{ params.source }}"],
                    doc="`sprout batch-plan SOURCE --shards N`: images per shard and the pinned model version.")
    scored = mapped_cli_task("score_shard", shard_args(plan.output),
                             doc="`sprout predict SOURCE --shard I/N --model V --output OUTPUT`: one mapped task "
                                 "(pod) per shard.")
    report = cli_task("merge_report", ["batch-report", "--shards", "{{ params.shards }}", "--format",
                                       "{{ params.format }}", "--low-confidence", "{{ params.low_confidence }}",
                                       "--key", RUN_ID_ARG, "--", "{{ params.output }}"],
                      doc="`sprout batch-report OUTPUT`: merge the shards, write and log the report.")
    scored >> report


sprout_batch_predict()
