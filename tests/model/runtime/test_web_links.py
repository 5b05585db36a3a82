"""Browser links to Airflow's and MLflow's UIs: only with a public URL, run ids escaped in the path."""

from __future__ import annotations

from model.runtime.web_links import airflow_run_url, mlflow_run_url


def test_an_airflow_run_link_escapes_the_run_id_and_needs_a_public_url() -> None:
    run_id = "manual__2026-12-07T07:05:24.487173+00:00"
    assert (airflow_run_url("http://localhost:8080/", "sprout_retrain", run_id)
            == "http://localhost:8080/dags/sprout_retrain/runs/manual__2026-12-07T07%3A05%3A24.487173%2B00%3A00")
    assert airflow_run_url(None, "sprout_retrain", run_id) is None
    assert airflow_run_url("http://localhost:8080", "sprout_retrain", None) is None


def test_an_mlflow_run_link_needs_the_experiment_and_the_run() -> None:
    assert mlflow_run_url("http://localhost:5000/", "3", "9f2c") == "http://localhost:5000/#/experiments/3/runs/9f2c"
    assert mlflow_run_url("http://localhost:5000", None, "9f2c") is None
    assert mlflow_run_url("http://localhost:5000", "3", None) is None
    assert mlflow_run_url(None, "3", "9f2c") is None
