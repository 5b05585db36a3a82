"""Trigger the retrain DAG, read its recent runs and what they did, and announce new approvals (an asset event)
through Airflow's REST API (v2, JWT auth)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from model.core.errors import OrchestratorUnavailableError
from model.core.settings import Settings
from model.runtime.retrain_outcome import RunOutcome, run_outcome, xcoms_needed

TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class AirflowClient:
    """A small client for the calls Sprout needs: trigger a DAG run, list recent runs, emit an asset event."""

    def __init__(self, *, url: str, username: str, password: str, dag_id: str) -> None:
        self.url = url.rstrip("/")
        self.username, self.password, self.dag_id = username, password, dag_id

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowClient:
        if not settings.airflow_url or not settings.airflow_username or settings.airflow_password is None:
            raise OrchestratorUnavailableError("Airflow is not configured: set SPROUT_AIRFLOW_URL, "
                                               "SPROUT_AIRFLOW_USERNAME and SPROUT_AIRFLOW_PASSWORD.")
        return cls(url=settings.airflow_url, username=settings.airflow_username,
                   password=settings.airflow_password.get_secret_value(), dag_id=settings.retrain_dag_id)

    @contextmanager
    def _open(self) -> Iterator[httpx.Client]:
        """A client holding one bearer token: every call of a listing reuses it."""
        with httpx.Client(base_url=self.url, timeout=TIMEOUT) as client:
            token = client.post("/auth/token", json={"username": self.username, "password": self.password})
            if token.status_code >= 400:
                raise OrchestratorUnavailableError(f"Airflow refused Sprout's credentials ({token.status_code}).")
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield client

    @retry(retry=retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.3, max=2), reraise=True)
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._open() as client:
            return _json(client.request(method, path, **kwargs))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self._request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OrchestratorUnavailableError(f"Airflow is unreachable at {self.url}: {exc}") from exc

    def trigger(self, *, force: bool = False, note: str | None = None) -> DagRun:
        """Start a run of the retrain DAG now; returns its id and state."""
        body: dict[str, Any] = {"logical_date": None, "conf": {"force": force}}
        if note:
            body["note"] = note
        run = self.call("POST", f"/api/v2/dags/{self.dag_id}/dagRuns", json=body)
        return _run_summary(run)

    def emit_asset_event(self, name: str, *, extra: dict[str, Any] | None = None) -> int:
        """Record an event on the asset called ``name`` (DAGs scheduled on it run); returns the event id."""
        found = self.call("GET", "/api/v2/assets", params={"name_pattern": name, "limit": 100})
        ids = [a["id"] for a in found.get("assets", []) if a.get("name") == name]
        if not ids:
            raise OrchestratorUnavailableError(f"Airflow knows no asset {name!r}: is the retrain DAG deployed?")
        event = self.call("POST", "/api/v2/assets/events", json={"asset_id": ids[0], "extra": extra or {}})
        return int(event["id"])

    def recent_runs(self, limit: int = 5) -> list[DagRun]:
        """The latest runs of the retrain DAG, newest first."""
        data = self.call("GET", f"/api/v2/dags/{self.dag_id}/dagRuns",
                         params={"order_by": "-run_after", "limit": limit})
        return [_run_summary(r) for r in data.get("dag_runs", [])]

    @retry(retry=retry_if_exception_type(httpx.TransportError), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.3, max=2), reraise=True)
    def _outcomes(self, limit: int) -> list[tuple[DagRun, RunOutcome]]:
        dag = f"/api/v2/dags/{self.dag_id}/dagRuns"
        with self._open() as client:
            runs = _json(client.get(dag, params={"order_by": "-run_after", "limit": limit})).get("dag_runs", [])
            found = []
            for run in runs:
                path = f"{dag}/{quote(str(run['dag_run_id']), safe='')}/taskInstances"
                tis = _json(client.get(path, params={"limit": 100})).get("task_instances", [])
                xcoms = {task: _xcom(client, f"{path}/{task}/xcomEntries/return_value")
                         for task in xcoms_needed(run.get("state"), tis)}
                found.append((_run_summary(run), run_outcome(run.get("state"), tis, xcoms)))
        return found

    def recent_outcomes(self, limit: int = 5) -> list[tuple[DagRun, RunOutcome]]:
        """The latest runs of the retrain DAG, newest first, each with what it did (skipped and why, promoted,
        refused, failed in which task...): one token, one client, a few calls per run."""
        try:
            return self._outcomes(limit)
        except httpx.HTTPError as exc:
            raise OrchestratorUnavailableError(f"Airflow is unreachable at {self.url}: {exc}") from exc


def _json(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise OrchestratorUnavailableError(f"Airflow answered {resp.status_code}: {resp.text[:200]}")
    return resp.json()


def _xcom(client: httpx.Client, path: str) -> dict[str, Any] | None:
    """A task's returned JSON object (None when it returned none)."""
    resp = client.get(path)
    if resp.status_code == 404:
        return None
    value = _json(resp).get("value")
    if isinstance(value, str):  # stored serialized
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class DagRun:
    """A DAG run as Airflow reports it (dates are ISO 8601 strings, or None)."""

    dag_run_id: str | None
    state: str | None
    run_type: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    logical_date: str | None = None
    run_after: str | None = None


def _run_summary(run: dict[str, Any]) -> DagRun:
    return DagRun(**{f.name: run.get(f.name) for f in fields(DagRun)})
