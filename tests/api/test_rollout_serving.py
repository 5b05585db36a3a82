"""A challenger on the real API (uvicorn, an embedded home): a candidate that clears the gate with SPROUT_ROLLOUT=shadow
becomes the challenger, not the champion; in shadow the champion answers and the challenger scores the images off
the response path, the pairs recorded and later paired with a reviewer's label; in canary the challenger answers
its share of client keys, each key always the same version; admins start, promote and abort rollouts through the
API, audited and announced by signed webhooks."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.utils.images import dataset_images
from tests.utils.live_api import ADMIN, LiveApi, one_version_home, serve, sprout
from tests.utils.markers import needs
from tests.utils.webhook_receiver import SECRET, webhook_receiver

pytestmark = pytest.mark.slow  # two versions are trained first
TRAINED = 40  # one_version_home's photos per label: the ones after these were never seen
FAST = {"SPROUT_MODEL_POLL_SECONDS": "0.5", "SPROUT_PREDICTIONS_PER_MINUTE": "100000"}


@pytest.fixture(scope="module")
@needs("server")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 the champion; version 2, trained with SPROUT_ROLLOUT=shadow, the challenger of an open rollout."""
    home = one_version_home(tmp_path_factory.mktemp("rollout"))
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env={"SPROUT_ROLLOUT": "shadow"})
    assert trained["gate"]["passed"], trained
    return home


def unseen(count: int) -> list[bytes]:
    """``count`` photos neither version trained on, both labels."""
    return [dataset_images(label, TRAINED + i + 1)[-1].read_bytes() for i in range(count // 2)
            for label in ("dandelion", "grass")]


def predict(client: httpx.Client, api: LiveApi, data: bytes, key: str | None = None) -> dict[str, Any]:
    resp = client.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")},
                       headers={"X-Sprout-Client": key} if key else {})
    assert resp.status_code == 200, resp.text
    return resp.json()


def rollouts(home: Path) -> list[dict[str, Any]]:
    return sprout(home, "rollout", "status")["rollouts"]


def wait_for_evidence(home: Path, shadowed: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = rollouts(home)[0]
        if current["evidence"]["shadowed"] >= shadowed or time.monotonic() > deadline:
            return current
        time.sleep(1)


def test_a_passing_candidate_becomes_the_challenger_and_shadows_the_champion(home: Path) -> None:
    [started] = rollouts(home)
    assert (started["challenger"], started["champion"], started["mode"], started["open"]) == ("2", "1", "shadow", True)
    assert started["started_by"].startswith("run ")
    with serve(home, env=FAST) as api:
        assert api.get("/models")["champion"] == "1"  # the champion did not change
        images = unseen(12)
        trained_on = dataset_images("dandelion", 1)[-1].read_bytes()  # approved before the rollout started
        with httpx.Client(timeout=30) as client:
            answers = [predict(client, api, data) for data in [*images, trained_on]]
        assert {a["model_version"] for a in answers} == {"1"}  # the champion answers in shadow
        current = wait_for_evidence(home, len(images) + 1)
        assert current["evidence"]["shadowed"] == len(images) + 1, current
        assert current["evidence"]["reviewed"] == 0  # a training image is no reviewed live image
        assert api.metric("sprout_rollout_scored_total", mode="shadow", outcome="agree") + api.metric(
            "sprout_rollout_scored_total", mode="shadow", outcome="disagree") == len(images) + 1

        # a reviewer approves one of those images: its pair now counts on the reviewed side
        sample = api.submit(images[0], label="dandelion", headers=api.headers())
        resp = httpx.post(f"{api.url}/admin/samples/{sample['id']}/review",
                          json={"action": "approve", "label": "dandelion"}, headers=api.headers(), timeout=30)
        assert resp.status_code == 200, resp.text
        assert rollouts(home)[0]["evidence"]["reviewed"] == 1
        with httpx.Client(timeout=30) as client:  # the same reviewed image, again and again
            for _ in range(3):
                predict(client, api, images[0])
        again = wait_for_evidence(home, len(images) + 4)["evidence"]
        assert (again["shadowed"], again["reviewed"]) == (len(images) + 4, 1)  # one image, one paired comparison


def test_canary_answers_its_share_of_client_keys_and_a_key_always_gets_the_same_version(home: Path) -> None:
    assert sprout(home, "rollout", "abort", "--by", ADMIN)["outcome"] == "aborted"
    assert sprout(home, "rollout", "start", "2", "--by", ADMIN, "--mode", "canary")["open"]
    with serve(home, env=FAST | {"SPROUT_CANARY_SHARE": "0.1"}) as api:
        data = unseen(2)[0]
        with httpx.Client(timeout=30) as client:
            versions = [predict(client, api, data, key=f"client-{i}")["model_version"] for i in range(2000)]
            again = {i: predict(client, api, data, key=f"client-{i}")["model_version"] for i in range(0, 2000, 50)}
        share = Counter(versions)["2"] / len(versions)
        assert 0.08 <= share <= 0.12, share
        assert all(again[i] == versions[i] for i in again)  # sticky: the same key, the same version
        assert api.metric("sprout_canary_answers_total", model="challenger") == Counter(versions)["2"] + sum(
            v == "2" for v in again.values())


def test_admins_start_promote_and_abort_rollouts_through_the_api_audited_and_announced(home: Path) -> None:
    with webhook_receiver() as hooks, serve(home, env=FAST | {"SPROUT_WEBHOOK_URL": hooks.url,
                                                               "SPROUT_WEBHOOK_SECRET": SECRET}) as api:
        public = api.get("/rollouts")
        assert public["challenger"] == "2" and public["rollouts"][0]["open"]  # the canary of the test before
        assert public["rollouts"][0]["summary"] and public["rollouts"][0]["decision"]["action"] == "wait"
        # the canary sent 2,040 times an image approved before it started: no paired comparison at all
        assert public["rollouts"][0]["evidence"]["reviewed"] == 0
        admin, reviewer = api.headers(admin=True), api.headers()
        start = f"{api.url}/admin/rollouts"
        assert httpx.post(start, json={"version": "2"}, timeout=30).status_code == 401
        assert httpx.post(start, json={"version": "2"}, headers=reviewer, timeout=30).status_code == 403
        busy = httpx.post(start, json={"version": "2"}, headers=admin, timeout=30)
        assert busy.status_code == 409 and "still open" in busy.json()["detail"]

        aborted = httpx.post(f"{start}/current/abort", json={"reason": "trying the override"}, headers=admin,
                             timeout=30)
        assert aborted.status_code == 200, aborted.text
        assert (aborted.json()["outcome"], aborted.json()["decided_by"], aborted.json()["reason"]) == (
            "aborted", api.admin_username, "trying the override")
        assert api.get("/models")["challenger"] is None  # this process dropped the challenger at once
        assert httpx.post(start, json={"version": "99"}, headers=admin, timeout=30).status_code == 404
        champion = httpx.post(start, json={"version": "1"}, headers=admin, timeout=30)
        assert champion.status_code == 409 and "champion already" in champion.json()["detail"]
        assert httpx.post(start, json={"version": "2", "mode": "blue"}, headers=admin, timeout=30).status_code == 422

        started = httpx.post(start, json={"version": "2", "mode": "shadow"}, headers=admin, timeout=30)
        assert started.status_code == 201 and started.json()["started_by"] == api.admin_username, started.text
        assert api.get("/models")["challenger"] == "2"
        stale = httpx.post(f"{start}/current/promote", json={"rollout_id": aborted.json()["id"]}, headers=admin,
                           timeout=30)  # the admin looked at the rollout that was aborted: nothing is done
        assert stale.status_code == 409 and "decided meanwhile" in stale.json()["detail"], stale.text
        assert api.get("/models")["champion"] == "1"
        promoted = httpx.post(f"{start}/current/promote", json={"rollout_id": started.json()["id"]}, headers=admin,
                              timeout=30)
        assert promoted.status_code == 200 and promoted.json()["outcome"] == "promoted", promoted.text
        models = api.get("/models")
        assert (models["champion"], models["serving"], models["challenger"]) == ("2", "2", None)
        assert (models["changes"][0]["kind"], models["changes"][0]["changed_by"]) == ("rollout", api.admin_username)
        with httpx.Client(timeout=30) as client:
            assert predict(client, api, unseen(2)[0])["model_version"] == "2"  # served at once
        assert httpx.post(f"{start}/current/promote", json={}, headers=admin, timeout=30).status_code == 404

        events = hooks.events()  # every one signed with the secret
        kinds = [e["type"] for e in events]
        assert kinds == ["rollout.aborted", "rollout.started", "champion.promoted", "rollout.promoted"], kinds
        assert events[-1]["data"]["challenger"] == "2" and events[-1]["data"]["decided_by"] == api.admin_username


def test_a_champion_change_during_a_rollout_aborts_it_at_the_next_judgement(home: Path) -> None:
    """The evidence compared the challenger with the champion of the rollout's start: once another champion
    serves (a rollback, or a direct promotion), the judge aborts rather than promote on stale evidence."""
    assert sprout(home, "rollout", "start", "1", "--by", ADMIN)["champion"] == "2"
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")  # SPROUT_ROLLOUT=direct
    assert trained["promoted"] and trained["version"] == "3", trained
    judged = sprout(home, "rollout", "judge")
    assert (judged["outcome"], judged["decided_by"]) == ("aborted", "rule"), judged
    assert "the champion changed during the rollout (v2 then, v3 now)" in judged["reason"]


def test_a_newer_candidate_supersedes_a_runs_challenger_but_waits_for_a_persons_rollout(home: Path) -> None:
    """A rollout a person started stands when a retrain's candidate clears the gate (the candidate stays registered
    and the outcome says how to roll it out); once that one ended, the candidate's promotion is retried and it becomes
    the challenger; the next run's candidate then supersedes it — the older rollout aborted by that run, the champion
    untouched."""
    champion = sprout(home, "status")["champion"]["version"]
    other = next(v for v in ("1", "2") if v != champion)
    assert sprout(home, "rollout", "start", other, "--by", ADMIN)["open"]
    shadow = {"SPROUT_ROLLOUT": "shadow"}
    waiting = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env=shadow)
    assert waiting["gate"]["passed"] and not waiting["promoted"], waiting
    assert any(f"rollout start {waiting['version']}` puts this one" in w for w in waiting["warnings"]), waiting
    assert rollouts(home)[0]["challenger"] == other  # the person's rollout stands

    assert sprout(home, "rollout", "abort", "--by", ADMIN)["outcome"] == "aborted"
    retried = sprout(home, "promote", str(waiting["run_id"]), env=shadow)
    assert not retried["promoted"] and not retried["warnings"], retried
    first = rollouts(home)[0]
    assert (first["challenger"], first["started_by"], first["open"]) == (
        waiting["version"], f"run {waiting['run_id']}", True)

    newer = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env=shadow)
    assert newer["gate"]["passed"] and not newer["promoted"], newer
    current, superseded = rollouts(home)[:2]
    assert (current["challenger"], current["open"], current["started_by"]) == (
        newer["version"], True, f"run {newer['run_id']}")
    assert (superseded["id"], superseded["outcome"], superseded["decided_by"]) == (
        first["id"], "aborted", f"run {newer['run_id']}")
    assert superseded["reason"].startswith(f"Abort: superseded by run {newer['run_id']}'s version {newer['version']}")
    assert sprout(home, "status")["champion"]["version"] == champion  # never touched
