"""The rollout DAG: its structure, then real runs — the real API records live observations of a challenger in shadow,
reviewers label those images, and ``sprout_rollout`` (``dag.test()``, no manual step) aborts a deliberately worse
challenger (the champion never changes) and promotes one at least as good.

The worse one is a real Sprout version: version 1, trained on dandelion/grass with every label swapped (a first
model clears the gate on its own labels), then the labels are corrected by an admin, version 2 trained on them
becomes the champion, and an admin starts a rollout of version 1 — as the issue says an admin may, for any
registered Sprout version, and as the offline gate would never let a candidate through.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.models import Sample
from model.core.settings import Settings
from model.review.actions import relabel_sample
from tests.dags.dag_runs import Driver, run_dag, xcom
from tests.utils.datasets import write_tree
from tests.utils.images import dataset_images
from tests.utils.live_api import ADMIN, LiveApi, add_reviewer, serve, sprout
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

pytestmark = pytest.mark.slow

DAG_ID = "sprout_rollout"
TRAINED, LIVE = 30, 16  # photos per label: trained on; then sent as live traffic, reviewed
SWAP = {"dandelion": "grass", "grass": "dandelion"}
# the rule, with thresholds a test reaches: 12 reviewed pairs decide (the defaults: docs/concepts/rollout.md)
RULE = {"SPROUT_ROLLOUT_MIN_REVIEWED": "12", "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY, "SPROUT_GATE_MIN_ACCURACY": "0.5"}
LITE0 = ("--backbone", "efficientnet_lite0")


def test_the_dag_judges_every_five_minutes_with_one_task(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}
    dag = dagbag["dags"][DAG_ID]
    assert dag["cron"] == "*/5 * * * *" and dag["catchup"] is False and dag["max_active_runs"] == 1
    assert list(dag["tasks"]) == ["judge_rollout"]
    assert dag["tasks"]["judge_rollout"]["rendered"] == [["rollout", "judge"]]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 trained on swapped labels, version 2 (the champion) on the corrected ones."""
    base = tmp_path_factory.mktemp("rollout-dag")
    home = base / "home"
    add_reviewer(home)
    photos = [(label, path) for label in SWAP for path in dataset_images(label, TRAINED)]
    sprout(home, "import", str(write_tree([(SWAP[label], path) for label, path in photos], base / "swapped")))
    first = sprout(home, "train", "--force", *LITE0)
    assert first["promoted"] and first["version"] == "1", first
    svc = migrated_services(Settings(home=home, split_key=TEST_SPLIT_KEY))
    with svc.session() as session:  # an admin corrects every label (audited relabels)
        for label, path in photos:
            sample = session.query(Sample).filter_by(sha256=hashlib.sha256(path.read_bytes()).hexdigest()).one()
            relabel_sample(session, svc.store, sample_id=sample.id, label=label, reviewer=ADMIN)
    second = sprout(home, "train", "--force", *LITE0)
    assert second["promoted"] and second["version"] == "2", second
    return home


def live_traffic(api: LiveApi, offset: int) -> list[tuple[str, bytes]]:
    """Photos neither version saw, each predicted once, then sent for review and approved as its true label."""
    images = [(label, dataset_images(label, TRAINED + offset + i + 1)[-1].read_bytes())
              for i in range(LIVE // 2) for label in SWAP]
    with httpx.Client(timeout=30) as client:
        for _, data in images:
            resp = client.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")})
            assert resp.status_code == 200 and resp.json()["model_version"] == "2", resp.text
        headers = api.headers()
        for label, data in images:
            sample = api.submit(data, label=label, headers=headers)
            resp = client.post(f"{api.url}/admin/samples/{sample['id']}/review",
                               json={"action": "approve", "label": label}, headers=headers)
            assert resp.status_code == 200, resp.text
    return images


def wait_for_observations(home: Path, count: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = sprout(home, "rollout", "status")["rollouts"][0]
        if current["evidence"]["reviewed"] >= count or time.monotonic() > deadline:
            return current
        time.sleep(1)


def test_a_worse_challenger_is_aborted_and_a_better_one_promoted_by_the_dag(home: Path, driver: Driver) -> None:
    started = sprout(home, "rollout", "start", "1", "--by", ADMIN)  # the swapped-label version, in shadow
    assert (started["challenger"], started["champion"], started["mode"]) == ("1", "2", "shadow")

    waiting = run_dag(driver, DAG_ID, "2026-05-01T00:00:00+00:00", home=home, env=RULE)
    assert waiting["state"] == "success", waiting["log"]
    assert xcom(waiting, "judge_rollout")["decision"]["action"] == "wait"  # no live evidence yet

    with serve(home, env={"SPROUT_MODEL_POLL_SECONDS": "0.5"}) as api:
        live_traffic(api, 0)
        evidence = wait_for_observations(home, LIVE)["evidence"]
        assert evidence["reviewed"] == LIVE and evidence["only_champion_right"] > evidence["only_challenger_right"]

        judged = run_dag(driver, DAG_ID, "2026-05-01T00:05:00+00:00", home=home, env=RULE)
        assert judged["state"] == "success", judged["log"]
        aborted = xcom(judged, "judge_rollout")
        assert (aborted["outcome"], aborted["decided_by"], aborted["open"]) == ("aborted", "rule", False), aborted
        assert "significantly worse" in aborted["reason"]
        assert api.get("/models")["champion"] == "2"  # the champion never changed

        # a challenger at least as good: a new candidate on the same data, in shadow (SPROUT_ROLLOUT)
        third = sprout(home, "train", "--force", *LITE0, env={"SPROUT_ROLLOUT": "shadow"})
        assert not third["promoted"] and third["version"] == "3", third
        time.sleep(5)  # the API loads the challenger within its poll interval (0.5 s)
        live_traffic(api, LIVE // 2)
        for _, data in (images := [(lbl, dataset_images(lbl, TRAINED + i + 1)[-1].read_bytes())
                                   for i in range(LIVE // 2) for lbl in SWAP]):  # reviewed already: paired at once
            assert httpx.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")},
                              timeout=30).status_code == 200
        wait_for_observations(home, LIVE + len(images))
        promoted = run_dag(driver, DAG_ID, "2026-05-01T00:10:00+00:00", home=home, env=RULE)
        assert promoted["state"] == "success", promoted["log"]
        decided = xcom(promoted, "judge_rollout")
        assert (decided["outcome"], decided["challenger"], decided["decided_by"]) == ("promoted", "3", "rule"), decided
        assert api.get("/models")["champion"] == "3"
        assert api.get("/models")["changes"][0]["kind"] == "rollout"
