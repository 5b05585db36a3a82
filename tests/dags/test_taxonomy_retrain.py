"""A label renamed through the API on a real Airflow (scripts/airflow.sh, as ``make up`` runs it): the API asks for a
forced run of the retrain DAG as its Airflow user, the run trains on the new label with no new approval, the gate
compares the champion on the same images through the rename (the same accuracy it had), and the new version —
knowing only the new name — is served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.utils.airflow_runs import dag_runs, wait_for
from tests.utils.datasets import dataset_tree
from tests.utils.images import dataset_images
from tests.utils.live_api import SPROUT, add_reviewer, serve, sprout, sprout_env
from tests.utils.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAG_ID = "sprout_retrain"


def test_a_rename_starts_a_forced_retrain_and_the_renamed_model_is_served(tmp_path: Path) -> None:
    home = tmp_path / "home"
    add_reviewer(home)
    assert sprout(home, "import", str(dataset_tree(tmp_path / "tree", 20)))["added"] == 40
    first = sprout(home, "train", "--force")
    assert first["promoted"] and first["version"] == "1", first
    settings = {k: v for k, v in sprout_env(home).items() if k.startswith("SPROUT_")} | {
        "SPROUT_CLI": SPROUT, "SPROUT_TASK_RETRIES": "0", "SPROUT_CANDIDATE_BACKBONES": first["backbone"]}
    with servers.airflow_standalone(settings, dags_folder=REPO_ROOT / "dags") as airflow:
        wait_for("the retrain DAG to be parsed and its first scheduled run to finish", lambda: (runs := dag_runs(
            airflow)) and all(r["state"] in ("success", "failed") for r in runs), timeout=300)
        before = {r["dag_run_id"] for r in dag_runs(airflow)}
        api_env = {"SPROUT_AIRFLOW_URL": airflow.url, "SPROUT_AIRFLOW_USERNAME": airflow.api_username,
                   "SPROUT_AIRFLOW_PASSWORD": airflow.api_password, "SPROUT_MODEL_POLL_SECONDS": "1"}
        with serve(home, env=api_env) as api:
            resp = httpx.post(f"{api.url}/admin/labels/dandelion/rename", json={"to": "taraxacum"},
                              headers=api.headers(admin=True), timeout=60)
            assert resp.status_code == 200, resp.text
            retrain = resp.json()["retrain"]
            assert retrain["triggered"] is True and retrain["dag_run_id"] not in before, retrain
            finished = wait_for("the forced DAG run to finish", lambda: next(
                (r for r in dag_runs(airflow) if r["dag_run_id"] == retrain["dag_run_id"]
                 and r["state"] in ("success", "failed")), None), timeout=900, interval=3)
            assert finished["state"] == "success" and finished["run_type"] == "manual", finished
            assert finished["conf"] == {"force": True} and f"label change {resp.json()['id']}" in finished["note"]

            models = api.get("/models")
            run = models["runs"][0]
            assert run["labels"] == ["grass", "taraxacum"] and run["champion_version"] == "1", run
            v1 = next(v for v in models["versions"] if v["version"] == "1")
            assert run["champion_metrics"]["accuracy"] == v1["metrics"]["accuracy"]  # like with like
            assert set(run["champion_metrics"]["per_class"]) == {"grass", "taraxacum"}
            assert models["champion"] == "2", run["gate_reason"]
            wait_for("the API to serve version 2", lambda: api.get("/models").get("serving") == "2", timeout=60,
                     interval=1)
            photo = dataset_images("dandelion", 30)[-1].read_bytes()
            answer = httpx.post(f"{api.url}/predict", files={"file": ("d.jpg", photo, "image/jpeg")}, timeout=60)
            assert answer.status_code == 200 and set(answer.json()["probabilities"]) == {"grass", "taraxacum"}
