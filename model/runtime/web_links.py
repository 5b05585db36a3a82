"""Links a browser can follow to Airflow's and MLflow's web UIs (``SPROUT_*_PUBLIC_URL``), for the API's answers."""

from __future__ import annotations

import logging
from urllib.parse import quote

from model.core.errors import RegistryUnavailableError
from model.serving.registry import Registry

log = logging.getLogger(__name__)


def airflow_run_url(public_url: str | None, dag_id: str, run_id: str | None) -> str | None:
    """A DAG run's page in Airflow's UI; None without a public URL or a run id."""
    if not public_url or not run_id:
        return None
    return f"{public_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_run_url(public_url: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    """An MLflow run's page in MLflow's UI; None without a public URL, an experiment or a run id."""
    if not public_url or not experiment_id or not run_id:
        return None
    return f"{public_url.rstrip('/')}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"


def training_experiment_id(registry: Registry) -> str | None:
    """The training runs' MLflow experiment id; None (no link) when MLflow cannot say."""
    try:
        return registry.experiment_id()
    except RegistryUnavailableError as exc:
        log.warning("no MLflow links: %s", exc)
        return None
