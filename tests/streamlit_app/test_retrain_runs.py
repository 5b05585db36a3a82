"""The Models page's retrain runs table (AppTest), from runs as GET /admin/retrain returns them: each run's outcome
in words, and its links to Airflow and MLflow."""

from __future__ import annotations

from typing import Any

import pandas as pd
from streamlit.testing.v1 import AppTest

AIRFLOW = "http://airflow.example:8080/dags/sprout_retrain/runs/"


def run(run_id: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {"dag_run_id": run_id, "state": "running" if outcome in ("queued", "running") else "success",
            "run_type": "manual", "start_date": "2026-12-07T07:05:24Z", "end_date": None, "outcome": outcome,
            "reason": None, "task": None, "training_run_id": None, "version": None,
            "airflow_url": AIRFLOW + run_id, "mlflow_url": None} | fields


RUNS = [
    run("r6", "running", task="assess_candidate"),
    run("r5", "promoted", version="4", training_run_id=12,
        mlflow_url="http://mlflow.example:5000/#/experiments/1/runs/9f2c"),
    run("r4", "refused", reason="test accuracy 0.71 is 0.05 below the champion's 0.76", training_run_id=11),
    run("r3", "failed", task="train_candidate", state="failed"),
    run("r2", "skipped", reason="only 3 new approved samples, 10 needed"),
    run("r1", "queued", state="queued"),
]


def table_app(runs: list[dict]) -> None:  # AppTest runs its source alone: builtin types only
    from streamlit_app.views.retrain import runs_table

    runs_table(runs)


def test_the_runs_table_says_what_each_run_did_and_links_airflow_and_mlflow() -> None:
    at = AppTest.from_function(table_app, args=(RUNS,)).run()
    assert not at.exception
    [table] = at.dataframe
    rows = table.value.to_dict("records")
    assert [r["outcome"] for r in rows] == [
        "Running: assess_candidate", "Promoted v4", "Refused: test accuracy 0.71 is 0.05 below the champion's 0.76",
        "Failed in train_candidate", "Skipped: only 3 new approved samples, 10 needed", "Queued"]
    assert [r["Airflow"] for r in rows] == [AIRFLOW + r["dag_run_id"] for r in RUNS]
    assert rows[1]["MLflow"] == "http://mlflow.example:5000/#/experiments/1/runs/9f2c"
    assert rows[1]["training run"] == 12
    assert pd.isna(rows[0]["MLflow"])  # nothing trained yet: no link
    spec = table.proto.columns  # links that say where they go, not raw URLs
    assert '"link"' in spec and '"Open in Airflow"' in spec and '"Open in MLflow"' in spec, spec


def test_no_runs_says_so() -> None:
    at = AppTest.from_function(table_app, args=([],)).run()
    assert [c.value for c in at.caption] == ["No retrain runs yet."] and not at.dataframe
