"""Helpers of the DAG tests: run a DAG through the driver and read task states and XComs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Driver = Callable[..., dict[str, Any]]


def run_dag(driver: Driver, dag_id: str, logical_date: str, *, home: Path, conf: dict[str, Any] | None = None,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    """One ``dag.test()`` run against the embedded Sprout home; ``tasks`` maps task id → state and XCom."""
    return driver("run", dag_id, logical_date, json.dumps(conf or {}),
                  env={"SPROUT_HOME": str(home), **(env or {})})


def states(result: dict[str, Any]) -> dict[str, str]:
    return {task_id: info["state"] for task_id, info in result["tasks"].items()}


def xcom(result: dict[str, Any], task_id: str) -> Any:
    return result["tasks"][task_id]["xcom"]
