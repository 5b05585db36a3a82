"""The Kubernetes runner's task pods get only the keys of Sprout's Secret that the ``sprout`` CLI uses.

Each key is an env variable with a ``secretKeyRef`` (SPROUT_K8S_SECRET_KEYS, default in the DAG module);
the Secret itself is never an ``envFrom`` source, which would hand the pod every key in it (the API's
Airflow password, the reviewer's, whatever else is kept there). The settings ConfigMap stays ``envFrom``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.dags.dag_runs import Driver

KUBERNETES = {"SPROUT_TASK_RUNNER": "kubernetes", "SPROUT_K8S_ENV_CONFIGMAP": "sprout-settings",
              "SPROUT_K8S_ENV_SECRET": "sprout-env"}
# The DAG module's default (DEFAULT_SECRET_KEYS): what the CLI needs; the MLflow login optional. Never the API's
# token-signing key (SPROUT_SECRET_KEY): no task reads it.
DEFAULT_KEYS = {"SPROUT_DATABASE_URL": False, "SPROUT_S3_ACCESS_KEY": False, "SPROUT_S3_SECRET_KEY": False,
                "MLFLOW_TRACKING_USERNAME": True, "MLFLOW_TRACKING_PASSWORD": True}
POD_TASKS = {"sprout_retrain": {"count_new_samples", "assess_candidate", "select_candidate", "train_candidate",
                                "promote_candidate", "record_rejection"},
             "sprout_bootstrap": {"import_dataset", "read_status", "train_candidate", "promote_candidate",
                                  "record_rejection"},
             "sprout_batch_predict": {"plan_shards", "score_shard", "merge_report"},
             "sprout_rollout": {"judge_rollout"}, "sprout_gc": {"collect_garbage"}}


def pods(dagbag: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(DAG id, task id) → the pod summary of each KubernetesPodOperator; every DAG, all its pod tasks."""
    assert dagbag["import_errors"] == {}
    found = {(dag_id, task_id): info["pod"] for dag_id in POD_TASKS
             for task_id, info in dagbag["dags"][dag_id]["tasks"].items() if "pod" in info}  # mapped ones too
    assert set(found) == {(d, t) for d, tasks in POD_TASKS.items() for t in tasks}
    return found


def secret_refs(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Env variable name → its secretKeyRef, for every env entry that reads a Secret."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}


def expected_refs(secret: str, keys: dict[str, bool]) -> dict[str, dict[str, Any]]:
    return {k: {"name": secret, "key": k, **({"optional": True} if optional else {})} for k, optional in keys.items()}


@pytest.fixture(scope="module")
def dagbag_secret(driver: Driver) -> dict[str, Any]:
    """Parsed with the Kubernetes runner, a settings ConfigMap and a Secret, SPROUT_K8S_SECRET_KEYS unset."""
    return driver("structure", env=KUBERNETES)


def test_pods_get_only_the_default_keys_of_the_secret(dagbag_secret: dict[str, Any]) -> None:
    for where, pod in pods(dagbag_secret).items():
        assert pod["env_from"] == [{"configMapRef": {"name": "sprout-settings"}}], where  # no secretRef
        assert secret_refs(pod) == expected_refs("sprout-env", DEFAULT_KEYS), where
        assert {"name": "SPROUT_DEVICE", "value": "auto"} in pod["env"], where
        names = [e["name"] for e in pod["env"]]
        assert len(names) == len(set(names)), where
        assert len(pod["env"]) == len(DEFAULT_KEYS) + 1, where  # nothing else: no literal secret


def test_the_key_list_comes_from_the_environment(driver: Driver) -> None:
    """SPROUT_K8S_SECRET_KEYS (the chart's airflow-env ConfigMap) replaces the default; `KEY?` is optional."""
    keys = "SPROUT_DATABASE_URL, SPROUT_S3_ACCESS_KEY,SPROUT_S3_SECRET_KEY,MLFLOW_TRACKING_PASSWORD?"
    dagbag = driver("structure", env=KUBERNETES | {"SPROUT_K8S_SECRET_KEYS": keys})
    for where, pod in pods(dagbag).items():
        assert pod["env_from"] == [{"configMapRef": {"name": "sprout-settings"}}], where
        assert secret_refs(pod) == expected_refs("sprout-env", {
            "SPROUT_DATABASE_URL": False, "SPROUT_S3_ACCESS_KEY": False, "SPROUT_S3_SECRET_KEY": False,
            "MLFLOW_TRACKING_PASSWORD": True}), where


def test_a_bad_key_list_fails_the_parse(driver: Driver) -> None:
    """A name that is no env variable is an import error of every DAG, not a pod Kubernetes refuses."""
    dagbag = driver("structure", env=KUBERNETES | {"SPROUT_K8S_SECRET_KEYS": "SPROUT_DATABASE_URL,MLFLOW-LOGIN"})
    errors = dagbag["import_errors"]
    assert {path.rsplit("/", 1)[-1] for path in errors} == {f"{dag_id}.py" for dag_id in POD_TASKS}, errors
    assert all("SPROUT_K8S_SECRET_KEYS" in message for message in errors.values()), errors


def test_no_secret_no_secret_refs(dagbag_kubernetes: dict[str, Any]) -> None:
    """Without SPROUT_K8S_ENV_SECRET (the fixture sets none) a pod reads no Secret at all."""
    for where, pod in pods(dagbag_kubernetes).items():
        assert pod["env_from"] == [], where
        assert secret_refs(pod) == {}, where
        assert pod["env"] == [{"name": "SPROUT_DEVICE", "value": "auto"}], where
