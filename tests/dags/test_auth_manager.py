"""Sprout's Airflow auth manager (airflow_plugins/sprout_auth_manager.py), in the Airflow virtualenv: the API's
trigger user may start Sprout's DAGs and record events on Sprout's assets, and nothing a viewer may not do
besides; everyone else is decided as by Airflow's simple auth manager. (tests/dags/test_asset_trigger.py asks a
real Airflow the same.)"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.dags.conftest import DRIVER, _clean_environ
from tests.utils.paths import REPO_ROOT

PLUGINS = REPO_ROOT / "airflow_plugins"
TRIGGER = ["POST", "/api/v2/dags/sprout_retrain/dagRuns"]
EVENT = ["POST", "/api/v2/assets/events"]
# asset id -> the DAGs scheduled on it
CONSUMERS = {"1": ["sprout_retrain"], "2": ["sprout_retrain", "etl_daily"], "3": []}

# (user, role, the request being served, question: ask, method, entity, id) -> allowed
CASES: list[tuple[str, str, list[Any] | None, str, str, str | None, str | None, bool]] = [
    # the API's user: a run of a Sprout DAG, an event on an asset only Sprout's DAGs are scheduled on
    ("sprout", "viewer", TRIGGER, "dag", "POST", "RUN", "sprout_retrain", True),
    ("sprout", "viewer", [*EVENT, 1], "asset", "POST", None, None, True),
    # ... and reads
    ("sprout", "viewer", ["GET", "/api/v2/dags/sprout_retrain/dagRuns"], "dag", "GET", "RUN", "sprout_retrain", True),
    ("sprout", "viewer", ["GET", "/api/v2/assets"], "asset", "GET", None, None, True),
    # nothing else: another DAG, a backfill, a clear, a pause, a delete; the same question asked by another route
    ("sprout", "viewer", ["POST", "/api/v2/dags/etl_daily/dagRuns"], "dag", "POST", "RUN", "etl_daily", False),
    ("sprout", "viewer", ["POST", "/api/v2/backfills"], "dag", "POST", "RUN", "sprout_retrain", False),
    ("sprout", "viewer", ["POST", "/api/v2/dags/etl_daily/dagRuns"], "dag", "POST", "RUN", "sprout_retrain", False),
    ("sprout", "viewer", ["POST", "/api/v2/dags/sprout_retrain/dagRuns/r1/clear"], "dag", "PUT", "RUN",
     "sprout_retrain", False),
    ("sprout", "viewer", ["PATCH", "/api/v2/dags/sprout_retrain"], "dag", "PUT", None, "sprout_retrain", False),
    ("sprout", "viewer", ["DELETE", "/api/v2/dags/sprout_retrain"], "dag", "DELETE", None, "sprout_retrain", False),
    ("sprout", "viewer", None, "dag", "POST", "RUN", "sprout_retrain", False),  # outside a request
    # events on an asset another DAG is scheduled on too, on one nobody is, with a body the route refuses
    ("sprout", "viewer", [*EVENT, 2], "asset", "POST", None, None, False),
    ("sprout", "viewer", [*EVENT, 3], "asset", "POST", None, None, False),
    ("sprout", "viewer", [*EVENT, None], "asset", "POST", None, None, False),
    ("sprout", "viewer", ["POST", "/api/v2/assets/1/materialize"], "asset", "POST", None, "1", False),
    ("sprout", "viewer", ["DELETE", "/api/v2/assets/1/queuedEvents"], "asset", "DELETE", None, "1", False),
    # connections, variables, pools
    ("sprout", "viewer", ["POST", "/api/v2/connections"], "connection", "POST", None, None, False),
    ("sprout", "viewer", ["POST", "/api/v2/variables"], "variable", "POST", None, None, False),
    ("sprout", "viewer", ["POST", "/api/v2/pools"], "pool", "POST", None, None, False),
    # other users: as the simple auth manager decides (a viewer not listed gains nothing)
    ("ops", "viewer", TRIGGER, "dag", "POST", "RUN", "sprout_retrain", False),
    ("ops", "viewer", [*EVENT, 1], "asset", "POST", None, None, False),
    ("dev", "user", ["PATCH", "/api/v2/dags/etl_daily"], "dag", "PUT", None, "etl_daily", True),
    ("admin", "admin", ["POST", "/api/v2/connections"], "connection", "POST", None, None, True),
    ("admin", "admin", [*EVENT, 2], "asset", "POST", None, None, True),
]

MAX_EVENT_BODY = 16 * 1024  # sprout_auth_manager.MAX_EVENT_BODY: the most of an event's body the middleware reads


def event_body(size: int) -> str:
    """An event on asset 7 of exactly ``size`` bytes (its extra padded)."""
    head, tail = '{"asset_id": 7, "extra": {"note": "', '"}}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def kib_chunks(body: str) -> list[str]:
    return [body[i:i + 1024] for i in range(0, len(body), 1024)]


REQUESTS = [  # through the middleware: (method, path, body chunks) -> what the auth manager sees, the body passed on
    ("POST", "/api/v2/assets/events", ['{"asset_id": ', '7, "extra": {"approved": 10}}'], 7),
    ("POST", "/airflow/api/v2/assets/events", ['{"asset_id": "7"}'], 7),  # under a base path; lax int as the route
    ("POST", "/api/v2/assets/events", ["not json"], None),
    ("POST", "/api/v2/assets/events", ['{"asset_id": 7, "unknown": 1}'], None),  # the route refuses it: 422
    ("POST", "/api/v2/assets/events", ["[" * 5_000], None),  # too deep for json: refused, not a 500
    ("GET", "/api/v2/assets/events", [], None),
    ("POST", "/api/v2/assets/events", kib_chunks(event_body(MAX_EVENT_BODY)), 7),  # at the cap
]
OVERSIZED = [  # refused with 413 before Airflow sees them, read no further than the chunk that crosses the cap
    ("POST", "/api/v2/assets/events", [event_body(MAX_EVENT_BODY + 1)]),
    ("POST", "/api/v2/assets/events", kib_chunks(event_body(2 * MAX_EVENT_BODY))),
]


@pytest.fixture(scope="module")
def decided(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("auth")
    spec = {"consumers": CONSUMERS,
            "cases": [{"user": u, "role": r, "call": c, "ask": a, "method": m, "entity": e, "id": i}
                      for u, r, c, a, m, e, i, _ in CASES],
            "requests": [{"method": m, "path": p, "chunks": c} for m, p, c, *_ in REQUESTS + OVERSIZED]}
    env = _clean_environ() | {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
                              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,sprout:viewer",
                              "AIRFLOW__SPROUT__TRIGGER_USERS": " sprout, "}
    out = home / "out.json"
    proc = subprocess.run([str(airflow_python), str(DRIVER), "authorize", json.dumps(spec), str(out)], env=env,
                          cwd=home, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and out.is_file(), (proc.stdout + proc.stderr)[-5000:]
    return json.loads(out.read_text())


def test_the_trigger_user_may_start_sprout_dags_and_announce_approvals_and_nothing_else(
        decided: dict[str, Any]) -> None:
    wrong = [(case[:7], f"expected {case[7]}") for case, got in zip(CASES, decided["decisions"], strict=True)
             if got != case[7]]
    assert wrong == []
    assert decided["middlewares"] == ["ApiCallMiddleware"]


def test_the_middleware_reads_an_events_asset_and_passes_the_body_on_unchanged(decided: dict[str, Any]) -> None:
    for (method, path, chunks, asset_id), seen in zip(REQUESTS, decided["requests"][:len(REQUESTS)], strict=True):
        assert seen["call"] == {"method": method, "path": path, "event_asset_id": asset_id}, seen["call"]
        assert seen["body"] == "".join(chunks)
        assert "status" not in seen and seen["after"] is None


def test_the_middleware_refuses_an_event_body_over_its_cap_without_reading_the_rest(decided: dict[str, Any]) -> None:
    """The body is read before anyone is authenticated: a larger one is refused, not buffered, whoever sends it
    (Sprout's API sends {"asset_id": N, "extra": {"new_approved": N}}, some 50 bytes)."""
    for (_, _, chunks), seen in zip(OVERSIZED, decided["requests"][len(REQUESTS):], strict=True):
        assert seen.get("status") == 413 and "call" not in seen, {k: v for k, v in seen.items() if k != "body"}
        assert seen["read"] == min(len(chunks), MAX_EVENT_BODY // 1024 + 1), seen["read"]
        assert seen["after"] is None
