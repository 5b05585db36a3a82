"""Task pods (``SPROUT_TASK_RUNNER=kubernetes``): one pod of the Sprout image per task.

Its settings come from a ConfigMap (``SPROUT_K8S_ENV_CONFIGMAP``, all of it) and only the keys
``SPROUT_K8S_SECRET_KEYS`` names of the Secret ``SPROUT_K8S_ENV_SECRET`` (``secretKeyRef``, never the whole
Secret); a training pod asks for ``nvidia.com/gpu: 1`` and lands on GPU nodes (``SPROUT_K8S_GPU_NODE_SELECTOR``,
``SPROUT_K8S_GPU_TOLERATIONS``, JSON). The pod's arguments are the CLI's, never a shell line (``POD_SCRIPT``); it
writes its answer to ``/airflow/xcom/return.json``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from sprout_dag_support.settings import DagSettings

XCOM_FILE = "/airflow/xcom/return.json"
# A task pod runs `sh -c POD_SCRIPT sprout ARG...`: its `arguments` are the CLI's, handed on as "$@", so no shell
# ever parses a value (quotes, `;`, `$(...)` or `{{` in a DAG parameter stay part of that one argument). Empty
# arguments (an unset FORCE_FLAG) are left out, as the local runner does.
POD_SCRIPT = (f'set -e; mkdir -p {os.path.dirname(XCOM_FILE)}; '
              'for arg in "$@"; do shift; if [ -n "$arg" ]; then set -- "$@" "$arg"; fi; done; '
              f'exec sprout --json "$@" > {XCOM_FILE}')
POD_CMDS = ("sh", "-c", POD_SCRIPT, "sprout")


def pod_task(task_id: str, args: list[str], *, doc: str, gpu: bool, timeout: timedelta,
              settings: DagSettings) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return KubernetesPodOperator(arguments=list(args), **pod_kwargs(task_id, doc=doc, gpu=gpu, timeout=timeout,
                                                                     settings=settings))


def pod_kwargs(task_id: str, *, doc: str, gpu: bool, timeout: timedelta, settings: DagSettings) -> dict[str, Any]:
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
