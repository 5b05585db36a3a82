"""Watching a live Airflow from a test: the retrain DAG's runs, and polling until something holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest

from tests import servers

DAG_ID = "sprout_retrain"
T = TypeVar("T")


def dag_runs(airflow: servers.AirflowServer, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    """The DAG's runs, newest first."""
    resp = httpx.get(f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"},
                     headers={"Authorization": f"Bearer {airflow.token()}"}, timeout=10)
    resp.raise_for_status()
    runs: list[dict[str, Any]] = resp.json()["dag_runs"]
    return runs


def wait_for(what: str, probe: Callable[[], T], timeout: float, interval: float = 1.0) -> T:
    """``probe()``'s first truthy value; the test fails after ``timeout`` seconds, naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
