"""What the Sprout DAGs share: their settings and the tasks that run one ``sprout`` CLI subcommand.

Not a DAG file (listed in ``.airflowignore``). Airflow runs in its own virtualenv or image, so nothing
here imports Sprout's ``model`` package: every task runs ``sprout --json <subcommand>`` and passes on
the one JSON object it prints (XCom). ``SPROUT_TASK_RUNNER`` chooses where that runs:

- ``local`` (default): a subprocess beside Airflow (``SPROUT_CLI``, default ``sprout`` on ``PATH``);
  it inherits the worker's environment, so the ``SPROUT_*`` settings of the CLI are the worker's.
- ``kubernetes``: a pod of the Sprout image (``SPROUT_TRAINER_IMAGE``) per task, its settings from a
  ConfigMap (``SPROUT_K8S_ENV_CONFIGMAP``, all of it) and only the keys ``SPROUT_K8S_SECRET_KEYS`` names
  of the Secret ``SPROUT_K8S_ENV_SECRET`` (``secretKeyRef``, never the whole Secret); the training pod asks
  for ``nvidia.com/gpu: 1`` and lands on GPU nodes (``SPROUT_K8S_GPU_NODE_SELECTOR``,
  ``SPROUT_K8S_GPU_TOLERATIONS``, JSON). The pod's arguments are the CLI's, never a shell line (``POD_SCRIPT``);
  it writes its answer to ``/airflow/xcom/return.json``.

Settings are read from the environment when the DAG file is parsed (no Variables, DB or network).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import threading
from datetime import timedelta
from typing import Annotated, Any, Literal

import pendulum
from airflow.sdk import BaseOperator, TriggerRule, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
TAGS = ["sprout"]
XCOM_FILE = "/airflow/xcom/return.json"
# A task pod runs `sh -c POD_SCRIPT sprout ARG...`: its `arguments` are the CLI's, handed on as "$@", so no shell
# ever parses a value (quotes, `;`, `$(...)` or `{{` in a DAG parameter stay part of that one argument). Empty
# arguments (an unset FORCE_FLAG) are left out, as the local runner does.
POD_SCRIPT = (f'set -e; mkdir -p {os.path.dirname(XCOM_FILE)}; '
              'for arg in "$@"; do shift; if [ -n "$arg" ]; then set -- "$@" "$arg"; fi; done; '
              f'exec sprout --json "$@" > {XCOM_FILE}')
POD_CMDS = ("sh", "-c", POD_SCRIPT, "sprout")

# Errors the CLI reports (its JSON ``type``) that a retry can cure; any other reported error is final.
TRANSIENT_ERRORS = {"StorageUnavailableError", "RegistryUnavailableError"}

# Jinja snippets for CLI arguments. Each renders to one whole argument of the CLI, under both runners: no shell
# parses it (see POD_SCRIPT). An empty one (FORCE_FLAG unset) is left out.
RUN_ID_ARG = "{{ run_id }}"
FORCE_FLAG = "{{ '--force' if params.force else '' }}"
TRAINED_RUN_ID_ARG = "{{ ti.xcom_pull(task_ids='train_candidate')['run_id'] }}"
WINNER_ARG = "{{ ti.xcom_pull(task_ids='select_candidate')['backbone'] }}"
TRIED_ARG = "{{ ti.xcom_pull(task_ids='select_candidate')['tried'] | tojson }}"
# The backbones a retrain tries, one mapped task each (the CLI's SPROUT_CANDIDATE_BACKBONES, same default).
DEFAULT_CANDIDATES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

# The keys of Sprout's Secret (SPROUT_K8S_ENV_SECRET) that every task pod gets, each as an env variable of
# the same name (secretKeyRef); a trailing `?` marks a key the Secret may lack (optional). The `sprout` CLI
# of the tasks (import, status, retrain-check, train-candidate, gate, promote, batch-plan, predict,
# batch-report) needs its database, its bucket's key, and MLflow's login (MLflow's client reads
# MLFLOW_TRACKING_*). Not given: SPROUT_SECRET_KEY (it signs the API's tokens; no CLI task reads it), the
# Airflow and reviewer passwords, and anything else the Secret holds. The Helm chart sets the list
# (SPROUT_K8S_SECRET_KEYS of its airflow-env ConfigMap, the MLflow login required when it runs MLflow); this is
# the default when that is unset.
DEFAULT_SECRET_KEYS = ("SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY",
                       "MLFLOW_TRACKING_USERNAME?", "MLFLOW_TRACKING_PASSWORD?")
_SECRET_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an env variable's name that is a Secret key too


def _env(name: str, default: Any = None, factory: Any = None, description: str | None = None) -> Any:
    """A field read from the environment variable ``name`` (``description``: its line on the configuration page)."""
    if factory is not None:
        return Field(default_factory=factory, validation_alias=name, description=description)
    return Field(default, validation_alias=name, description=description)


def _words(value: str) -> tuple[str, ...]:
    """The items of a list setting written with commas and/or whitespace."""
    return tuple(w for w in re.split(r"[,\s]+", value) if w)


class DagSettings(BaseSettings):
    """The DAGs' configuration, from ``SPROUT_*`` environment variables (pydantic-settings, like Sprout's own).

    JSON values (``SPROUT_K8S_GPU_NODE_SELECTOR``, ``SPROUT_K8S_GPU_TOLERATIONS``) are parsed by pydantic-settings.
    """

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    runner: Literal["local", "kubernetes"] = _env("SPROUT_TASK_RUNNER", "local",
                                                  description="DAG tasks: `local` subprocess or `kubernetes` pods "
                                                               "(`SPROUT_TRAINER_IMAGE`, `SPROUT_K8S_*`).")
    cli: str = _env("SPROUT_CLI", "sprout",
                    description="The CLI the local DAG tasks run.")
    retrain_schedule: str = _env("SPROUT_RETRAIN_SCHEDULE", "@weekly",
                                 description="The retrain DAG's schedule (cron or preset).")
    retrain_asset: str = _env("SPROUT_RETRAIN_ASSET", "sprout_approved_samples",
                              description="The Airflow asset the retrain DAG is scheduled on (the API's "
                                           "`SPROUT_RETRAIN_ASSET`).")
    retries: int = _env("SPROUT_TASK_RETRIES", 2,
                        description="Retries of a task.")
    retry_delay_seconds: float = _env("SPROUT_TASK_RETRY_DELAY_SECONDS", 60.0,
                                      description="First delay before a retry (exponential backoff).")
    max_retry_delay_seconds: float = _env("SPROUT_TASK_MAX_RETRY_DELAY_SECONDS", 1800.0,
                                          description="Longest delay before a retry.")
    train_timeout_minutes: float = _env("SPROUT_TRAIN_TIMEOUT_MINUTES", 120.0,
                                        description="Time limit of the training tasks.")
    task_timeout_minutes: float = _env("SPROUT_TASK_TIMEOUT_MINUTES", 30.0,
                                       description="Time limit of every other task.")
    seed_dataset: str = _env("SPROUT_SEED_DATASET", "../shared/datasets/dandelion-grass",
                             description="What `sprout_bootstrap` imports when its `source` param is empty.")
    image: str = _env("SPROUT_TRAINER_IMAGE", "sprout:latest",
                      description="The Sprout trainer image of the task pods (`kubernetes` runner).")
    image_pull_policy: str = _env("SPROUT_K8S_IMAGE_PULL_POLICY", "IfNotPresent",
                                  description="The task pods' image pull policy.")
    namespace: str = _env("SPROUT_K8S_NAMESPACE", "sprout",
                          description="The namespace of the task pods.")
    service_account: str | None = _env("SPROUT_K8S_SERVICE_ACCOUNT",
                                       description="The task pods' service account.")
    env_configmap: str | None = _env("SPROUT_K8S_ENV_CONFIGMAP",
                                     description="The ConfigMap whose every key the task pods get as environment "
                                                  "(Sprout's settings).")
    env_secret: str | None = _env("SPROUT_K8S_ENV_SECRET",
                                  description="The Secret the task pods take the keys `SPROUT_K8S_SECRET_KEYS` names "
                                               "from.")
    secret_keys: Annotated[tuple[str, ...], NoDecode] = _env("SPROUT_K8S_SECRET_KEYS", DEFAULT_SECRET_KEYS,
                                                             description="The Secret's keys every task pod gets "
                                                                          "(`secretKeyRef`; a trailing `?`: optional).")
    candidate_backbones: Annotated[tuple[str, ...], NoDecode] = _env("SPROUT_CANDIDATE_BACKBONES",
                                                                     DEFAULT_CANDIDATES,
                                                                     description="The backbones a retrain tries, "
                                                                                 "one mapped task each (the CLI's "
                                                                                 "setting).")
    gpu_node_selector: dict[str, str] = _env("SPROUT_K8S_GPU_NODE_SELECTOR", factory=dict,
                                             description="JSON: the node selector of the training pod "
                                                          "(`nvidia.com/gpu: 1`).")
    gpu_tolerations: list[dict[str, Any]] = _env("SPROUT_K8S_GPU_TOLERATIONS",
                                                 factory=lambda: list(DEFAULT_GPU_TOLERATIONS),
                                                 description="JSON: the training pod's tolerations.")

    @field_validator("runner", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("candidate_backbones", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return (_words(value) or DEFAULT_CANDIDATES) if isinstance(value, str) else value

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """``KEY,KEY?,...`` (commas and/or whitespace); each a valid name, none twice."""
        if not isinstance(value, str):
            return value
        keys = _words(value)
        for key in keys:
            if not _SECRET_KEY_NAME.fullmatch(key.removesuffix("?")):
                raise ValueError(f"SPROUT_K8S_SECRET_KEYS: {key!r} is not a variable name (optional: NAME?)")
        names = [k.removesuffix("?") for k in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"SPROUT_K8S_SECRET_KEYS names a key twice: {value!r}")
        return keys

    @property
    def secret_env(self) -> list[tuple[str, bool]]:
        """``(key, optional)`` of each key of ``env_secret`` the task pods get; none without a Secret."""
        if not self.env_secret:
            return []
        return [(key.removesuffix("?"), key.endswith("?")) for key in self.secret_keys]

    @property
    def retry_delay(self) -> timedelta:
        return timedelta(seconds=self.retry_delay_seconds)

    @property
    def max_retry_delay(self) -> timedelta:
        return timedelta(seconds=self.max_retry_delay_seconds)

    @property
    def train_timeout(self) -> timedelta:
        return timedelta(minutes=self.train_timeout_minutes)

    @property
    def task_timeout(self) -> timedelta:
        return timedelta(minutes=self.task_timeout_minutes)

    def retrain_timetable(self) -> Any:
        """The retrain DAG's schedule: its timetable (``retrain_schedule``, UTC) OR an event on the asset the
        API announces approvals on (``retrain_asset``, the API's SPROUT_RETRAIN_ASSET)."""
        from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

        return AssetOrTimeSchedule(timetable=CronTriggerTimetable(self.retrain_schedule, timezone="UTC"),
                                   assets=[Asset(self.retrain_asset)])

    def default_args(self) -> dict[str, Any]:
        """Retries with exponential backoff for every task (a final CLI error fails at once)."""
        return {
            "owner": "sprout",
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": self.max_retry_delay,
            "execution_timeout": self.task_timeout,
        }


SETTINGS = DagSettings()


# --------------------------------------------------------------------------- running the CLI


def run_cli(cli: str, args: list[str]) -> dict[str, Any]:
    """Run ``CLI --json ARGS``, log its stderr as it comes, return its one JSON object.

    A non-zero exit fails the task: at once (no retry) for an error the CLI reports as final (bad
    data, a refused promotion), with the normal retries for an outage or a crash.
    """
    cmd = [*shlex.split(cli), "--json", *(a for a in args if a != "")]
    log.info("running %s", shlex.join(cmd))
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise AirflowFailException(f"cannot run the sprout CLI {cmd[0]!r} (set SPROUT_CLI): {exc}") from exc
    tail: list[str] = []

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.info("sprout: %s", line.rstrip())
            tail[:] = [*tail[-19:], line.rstrip()]

    reader = threading.Thread(target=pump_stderr, daemon=True)
    reader.start()
    assert proc.stdout is not None
    try:
        stdout = proc.stdout.read()
        code = proc.wait()
    except BaseException:  # the task timed out or was killed: do not leave the CLI running
        proc.kill()
        proc.wait()
        raise
    reader.join(timeout=10)
    answer = _parse_answer(stdout)
    if code != 0:
        message = f"`sprout {args[0]}` exited with {code}: " + (
            answer.get("error") or " / ".join(tail[-5:]) or "no output")
        if answer.get("error") and answer.get("type") not in TRANSIENT_ERRORS:
            raise AirflowFailException(message)
        raise RuntimeError(message)
    if not answer:
        raise RuntimeError(f"`sprout {args[0]}` printed no JSON object: {stdout[:500]!r}")
    return answer


def _parse_answer(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        answer = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    return answer if isinstance(answer, dict) else {}


@task
def sprout_cli(args: list[str]) -> dict[str, Any]:
    """Run one ``sprout --json`` subcommand beside Airflow; its JSON answer is this task's XCom."""
    return run_cli(SETTINGS.cli, args)


def cli_task(task_id: str, args: list[str], *, doc: str, gpu: bool = False,
             settings: DagSettings = SETTINGS) -> BaseOperator:
    """The task that runs ``sprout --json ARGS`` where the runner setting says (``args`` are templated).

    ``gpu`` marks the training step: on Kubernetes its pod requests ``nvidia.com/gpu: 1``.
    """
    timeout = settings.train_timeout if gpu else settings.task_timeout
    if settings.runner == "kubernetes":
        return _pod_task(task_id, args, doc=doc, gpu=gpu, timeout=timeout, settings=settings)
    return sprout_cli.override(task_id=task_id, doc_md=doc, execution_timeout=timeout)(args).operator


def mapped_cli_task(task_id: str, arg_lists: Any, *, doc: str, gpu: bool = False,
                    settings: DagSettings = SETTINGS) -> Any:
    """One ``sprout --json ARGS`` task per entry of ``arg_lists`` (an upstream task's list of argument lists):
    Airflow's dynamic task mapping, a pod each on Kubernetes (``gpu`` as in ``cli_task``)."""
    timeout = settings.train_timeout if gpu else settings.task_timeout
    if settings.runner == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator.partial(**_pod_kwargs(task_id, doc=doc, gpu=gpu, timeout=timeout,
                                                           settings=settings)).expand(arguments=arg_lists).output
    return sprout_cli.override(task_id=task_id, doc_md=doc, execution_timeout=timeout).expand(args=arg_lists)


def _pod_task(task_id: str, args: list[str], *, doc: str, gpu: bool, timeout: timedelta,
              settings: DagSettings) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return KubernetesPodOperator(arguments=list(args), **_pod_kwargs(task_id, doc=doc, gpu=gpu, timeout=timeout,
                                                                     settings=settings))


def _pod_kwargs(task_id: str, *, doc: str, gpu: bool, timeout: timedelta, settings: DagSettings) -> dict[str, Any]:
    """Everything of a task's pod but its arguments."""
    from kubernetes.client import models as k8s

    env_from = []
    if settings.env_configmap:
        env_from.append(k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=settings.env_configmap)))
    # Of the Secret, only the keys the CLI uses (never envFrom: that would hand the pod every key in it).
    env = [k8s.V1EnvVar(name="SPROUT_DEVICE", value="auto")]
    env += [k8s.V1EnvVar(name=key, value_from=k8s.V1EnvVarSource(secret_key_ref=k8s.V1SecretKeySelector(
                name=settings.env_secret, key=key, optional=True if optional else None)))
            for key, optional in settings.secret_env]
    limits = {"nvidia.com/gpu": "1"} if gpu else {}
    resources = k8s.V1ResourceRequirements(
        requests={"cpu": "1", "memory": "4Gi" if gpu else "1Gi"},
        limits={"memory": "16Gi" if gpu else "4Gi", **limits},
    )
    return dict(  # noqa: C408 - the operator's keyword arguments
        task_id=task_id,
        doc_md=doc,
        name=f"sprout-{task_id.replace('_', '-')}",
        namespace=settings.namespace,
        image=settings.image,
        image_pull_policy=settings.image_pull_policy,
        cmds=list(POD_CMDS),  # the arguments: the CLI's (see POD_SCRIPT)
        env_vars=env,
        env_from=env_from or None,
        container_resources=resources,
        node_selector=settings.gpu_node_selector if gpu else None,
        tolerations=settings.gpu_tolerations if gpu else None,  # Kubernetes JSON (camelCase), as in YAML
        service_account_name=settings.service_account,
        labels={"app.kubernetes.io/part-of": "sprout", "sprout/task": task_id.replace("_", "-")},
        do_xcom_push=True,
        get_logs=True,
        on_finish_action="delete_pod",
        reattach_on_restart=True,
        execution_timeout=timeout,
    )


# --------------------------------------------------------------------------- candidates


@task
def candidate_args(backbones: list[str]) -> list[list[str]]:
    """One ``assess-candidate`` argument list per backbone to try (the mapped tasks' input)."""
    return [["assess-candidate", "--backbone", name] for name in backbones]


@task
def select_candidate(assessed: list[dict[str, Any]]) -> dict[str, Any]:
    """The backbone whose candidate has the lowest cross-validated log loss, and every candidate tried."""
    tried = [dict(a) for a in assessed]
    if not tried:
        raise AirflowFailException("no candidate was assessed")
    winner = min(tried, key=lambda a: float(a["log_loss"]))
    for a in tried:
        log.info("candidate %s: cross-validated accuracy %.4f, log loss %.4f%s", a["backbone"], a["accuracy"],
                 a["log_loss"], " (selected)" if a is winner else "")
    return {"backbone": winner["backbone"], "tried": tried}


def train_best_candidate(settings: DagSettings = SETTINGS) -> tuple[Any, BaseOperator]:
    """candidate_args → assess_candidate (mapped, one per backbone) → select_candidate → train_candidate.

    Returns the first task (to chain after the trigger check) and the training task."""
    args = candidate_args(list(settings.candidate_backbones))
    assessed = mapped_cli_task("assess_candidate", args, gpu=True, settings=settings,
                               doc="`sprout assess-candidate --backbone B`: embed (cached) and cross-validate one "
                                   "backbone's candidate; one mapped task (pod) per backbone.")
    winner = select_candidate(assessed)
    trained = cli_task("train_candidate", ["train-candidate", "--key", RUN_ID_ARG, FORCE_FLAG, "--backbone",
                                           WINNER_ARG, "--tried", TRIED_ARG], gpu=True, settings=settings,
                       doc="`sprout train-candidate --backbone WINNER`: the final head, evaluation and gate "
                           "(idempotent per run id).")
    winner >> trained
    return args, trained


# --------------------------------------------------------------------------- decisions and the report


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


def gate_and_promote(trained: BaseOperator, settings: DagSettings = SETTINGS) -> BaseOperator:
    """evaluate_gate → promote_candidate | record_rejection → report, after the training task."""
    decision = evaluate_gate(trained.output)
    promote = cli_task("promote_candidate", ["promote", TRAINED_RUN_ID_ARG], settings=settings,
                       doc="Register the gate-passed candidate (once) and move the `champion` alias to it.")
    reject = cli_task("record_rejection", ["gate", TRAINED_RUN_ID_ARG], settings=settings,
                      doc="Read back the refused candidate's stored gate decision and reason (`sprout gate`).")
    summary = report(trained.output)
    decision >> [promote, reject]
    [promote, reject] >> summary
    return summary.operator
