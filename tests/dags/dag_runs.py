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


def check_batch_run(result: dict[str, Any], expected: set[str], *, shards: int) -> dict[str, Any]:
    """A successful sprout_batch_predict run over ``expected`` (the image paths): one mapped task per shard, each
    scoring the plan's share with the planned version; returns the merge task's answer (the report's summary)."""
    assert result["state"] == "success", result["log"]
    assert set(states(result).values()) == {"success"}, states(result)
    plan = xcom(result, "plan_shards")
    assert plan["n"] == len(expected) and len(plan["shards"]) == shards
    instances = result["tasks"]["score_shard"]["mapped"]
    assert [i["state"] for i in instances] == ["success"] * shards  # one mapped task per shard
    assert sorted(i["xcom"]["shard"] for i in instances) == [f"{i}/{shards}" for i in range(shards)]
    assert [i["xcom"]["n"] for i in sorted(instances, key=lambda i: i["xcom"]["shard"])] == \
        [s["n"] for s in plan["shards"]]
    assert all(i["xcom"]["model_version"] == plan["model_version"] for i in instances)
    report = xcom(result, "merge_report")
    assert report["n"] == len(expected) and report["shards"] == shards
    assert report["model_version"] == plan["model_version"]
    return report
