"""Runs inside the Airflow virtualenv (``.venv-airflow/bin/python``), driven by ``test_helm.py``.

    airflow_pods.py OUT.json

Parses the DAGs folder (``AIRFLOW__CORE__DAGS_FOLDER``) with the environment the Helm chart gives Airflow
(the ``SPROUT_*`` of its ``airflow-env`` ConfigMap, set by the test) and writes, per DAG and task, the Pod
that the KubernetesPodOperator would create, as the JSON sent to the Kubernetes API, and each DAG's schedule. Parse
errors are written too. Output goes to a file because Airflow logs to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def pods() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import BundleDagBag
    from kubernetes.client import ApiClient

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    bag = BundleDagBag(dag_folder=folder, bundle_path=folder, bundle_name="dags-folder")
    client = ApiClient()
    result: dict[str, Any] = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {},
                              "schedules": {}}
    for dag_id, dag in bag.dags.items():
        result["schedules"][dag_id] = str(dag.schedule)  # as the DAG file gave it (a cron string, an asset, ...)
        tasks: dict[str, Any] = {}
        for task in dag.tasks:
            if type(task).__name__ != "KubernetesPodOperator":
                tasks[task.task_id] = {"type": type(task).__name__}
                continue
            pod = task.build_pod_request_obj(dry_run=True)  # no kube config: nothing is sent
            tasks[task.task_id] = {"type": "KubernetesPodOperator",
                                   "pod": client.sanitize_for_serialization(pod)}
        result["dags"][dag_id] = tasks
    return result


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(pods(), indent=1, default=str))
