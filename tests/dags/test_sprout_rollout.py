"""The rollout DAG's structure: one task, every five minutes. Its real runs — a worse challenger aborted, a better one
promoted, on PostgreSQL, SeaweedFS, MLflow with auth and two API replicas — are in test_rollout_real_stack.py."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

DAG_ID = "sprout_rollout"


def test_the_dag_judges_every_five_minutes_with_one_task(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    dag = dagbag["dags"][DAG_ID]
    assert dag["cron"] == "*/5 * * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert list(dag["tasks"]) == ["judge_rollout"]
    assert dag["tasks"]["judge_rollout"]["rendered"] == [["rollout", "judge"]]
