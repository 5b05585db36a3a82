"""A retrain with too few new samples, on a real Airflow (scripts/airflow.sh, as ``make up`` runs it), the real API
and the real Streamlit app: Airflow calls the run a "success", the API and the Models page say it was skipped and
why, with a link to the run in Airflow. One Airflow for the module: its first scheduled run, then one run per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests import servers
from tests.e2e.conftest import streamlit_server
from tests.e2e.test_browser import log_in, settle
from tests.utils.airflow_runs import dag_runs, wait_for
from tests.utils.datasets import dataset_tree
from tests.utils.live_api import SPROUT, LiveApi, add_reviewer, serve, sprout, sprout_env
from tests.utils.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
expect.set_options(timeout=30_000)
DAG_ID = "sprout_retrain"
TOO_FEW = "only 4 new approved samples, 10 needed"  # 2 photos per label imported, SPROUT_MIN_NEW_SAMPLES 10
MLFLOW_PUBLIC = "http://127.0.0.1:5999"  # no MLflow run to link: a skipped run trained nothing


@dataclass(frozen=True)
class Stack:
    airflow: servers.AirflowServer
    api: LiveApi
    ui: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A home with 4 approved photos and no model, the Airflow its DAGs run on (its first scheduled run has
    finished: skipped), the API that triggers and reads them, the Streamlit app."""
    root = tmp_path_factory.mktemp("retrain-runs")
    home = root / "home"
    add_reviewer(home)
    assert sprout(home, "import", str(dataset_tree(root / "tree", 2)))["added"] == 4
    settings = {k: v for k, v in sprout_env(home).items() if k.startswith("SPROUT_")} | {
        "SPROUT_CLI": SPROUT, "SPROUT_TASK_RETRIES": "0"}
    with servers.airflow_standalone(settings, dags_folder=REPO_ROOT / "dags") as airflow:
        wait_for("the retrain DAG to be parsed and its first scheduled run to finish", lambda: (runs := dag_runs(
            airflow)) and all(r["state"] in ("success", "failed") for r in runs), timeout=300, interval=2)
        api_env = {"SPROUT_AIRFLOW_URL": airflow.url, "SPROUT_AIRFLOW_USERNAME": airflow.api_username,
                   "SPROUT_AIRFLOW_PASSWORD": airflow.api_password, "SPROUT_AIRFLOW_PUBLIC_URL": airflow.url,
                   "SPROUT_MLFLOW_PUBLIC_URL": MLFLOW_PUBLIC}
        with serve(home, need_model=False, env=api_env) as api, \
                streamlit_server(api.url, home, root) as ui:
            yield Stack(airflow, api, ui)


def test_a_retrain_with_too_few_samples_comes_back_skipped_with_its_reason(stack: Stack) -> None:
    reviewer = stack.api.headers()
    started = httpx.post(f"{stack.api.url}/admin/retrain", headers=reviewer, timeout=30)
    assert started.status_code == 202, started.text
    run_id = started.json()["dag_run_id"]

    def finished() -> dict | None:
        runs = httpx.get(f"{stack.api.url}/admin/retrain", headers=reviewer, timeout=60).json()["runs"]
        return next((r for r in runs if r["dag_run_id"] == run_id and r["outcome"] not in ("queued", "running")),
                    None)

    run = wait_for("the triggered run to finish", finished, timeout=180, interval=2)
    assert run["state"] == "success"  # Airflow's word for a run that skipped everything
    assert run["outcome"] == "skipped" and run["reason"] == TOO_FEW, run
    assert run["airflow_url"] == f"{stack.airflow.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    assert run["training_run_id"] is None and run["version"] is None and run["mlflow_url"] is None
    assert httpx.get(run["airflow_url"], timeout=30).status_code == 200  # Airflow's UI serves the run's page


def test_the_models_page_shows_a_retrain_with_too_few_samples_as_skipped_with_its_reason(
        page: Page, stack: Stack, screenshot: Callable[[str], Path]) -> None:
    page.set_viewport_size({"width": 1400, "height": 2400})
    log_in(page, f"{stack.ui}/review", stack.api.username, stack.api.password)
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Retrain")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Start retraining").click()
    started = page.get_by_text("Started DAG run manual__")
    expect(started).to_be_visible()
    run_id = started.inner_text().removeprefix("Started DAG run ").split(" (")[0]
    table = page.get_by_test_id("stDataFrame").filter(has=page.get_by_role("columnheader", name="outcome",
                                                                           include_hidden=True))
    # the grid draws on a canvas; the cells in view are also in an accessibility table beside it (a link cell
    # holds its URL there, the canvas shows "Open in Airflow")
    def cell(name: str, within: Locator) -> Locator:
        return within.get_by_role("gridcell", name=name, include_hidden=True)

    # the table refreshes itself while the run is queued or running: no reload, no click; the run's row is the
    # one whose Airflow link opens it
    airflow_url = f"{stack.airflow.url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
    expect(cell(airflow_url, table)).to_have_count(1)
    row = table.get_by_role("row", include_hidden=True).filter(has=cell(airflow_url, page))
    expect(cell(f"Skipped: {TOO_FEW}", row)).to_have_count(1, timeout=180_000)
    expect(page.get_by_text("Refreshing every")).to_have_count(0)  # nothing runs any more: no refresh
    page.get_by_role("heading", name="Retrain").scroll_into_view_if_needed()
    screenshot("skipped")
