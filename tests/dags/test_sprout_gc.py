"""The gc DAG's structure: one task, `sprout gc --apply`, once a day (its rules are tested in
tests/model/data/test_retention.py and the command in tests/model/cli/test_gc.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

DAG_ID = "sprout_gc"


def test_the_dag_applies_the_retention_rules_daily_with_one_task(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    dag = dagbag["dags"][DAG_ID]
    assert dag["cron"] == "17 3 * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert list(dag["tasks"]) == ["collect_garbage"]
    assert dag["tasks"]["collect_garbage"]["rendered"] == [["gc", "--apply"]]
