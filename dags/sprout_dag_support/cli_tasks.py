"""Tasks that run one ``sprout --json`` subcommand and pass on the one JSON object it prints (XCom).

Airflow runs in its own virtualenv or image, so nothing here imports Sprout's ``model`` package.
``SPROUT_TASK_RUNNER`` chooses where a task runs: ``local`` (default), a subprocess beside Airflow (``SPROUT_CLI``,
default ``sprout`` on ``PATH``) that inherits the worker's environment, so the CLI's ``SPROUT_*`` settings are the
worker's; or ``kubernetes``, a pod of the Sprout image per task (``sprout_dag_support.pods``).
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading
from typing import Any

from airflow.sdk import BaseOperator, task
from airflow.sdk.exceptions import AirflowFailException
from sprout_dag_support.pods import pod_kwargs, pod_task
from sprout_dag_support.settings import SETTINGS, DagSettings

log = logging.getLogger(__name__)

# Errors the CLI reports (its JSON ``type``) that a retry can cure; any other reported error is final.
TRANSIENT_ERRORS = {"StorageUnavailableError", "RegistryUnavailableError"}

# Jinja snippets for CLI arguments. Each renders to one whole argument of the CLI, under both runners: no shell
# parses it (see pods.POD_SCRIPT). An empty one (an unset FORCE_FLAG) is left out.
RUN_ID_ARG = "{{ run_id }}"


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
        return pod_task(task_id, args, doc=doc, gpu=gpu, timeout=timeout, settings=settings)
    return sprout_cli.override(task_id=task_id, doc_md=doc, execution_timeout=timeout)(args).operator


def mapped_cli_task(task_id: str, arg_lists: Any, *, doc: str, gpu: bool = False,
                    settings: DagSettings = SETTINGS) -> Any:
    """One ``sprout --json ARGS`` task per entry of ``arg_lists`` (an upstream task's list of argument lists):
    Airflow's dynamic task mapping, a pod each on Kubernetes (``gpu`` as in ``cli_task``)."""
    timeout = settings.train_timeout if gpu else settings.task_timeout
    if settings.runner == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator.partial(**pod_kwargs(task_id, doc=doc, gpu=gpu, timeout=timeout,
                                                           settings=settings)).expand(arguments=arg_lists).output
    return sprout_cli.override(task_id=task_id, doc_md=doc, execution_timeout=timeout).expand(args=arg_lists)
