"""Rollouts on real servers — PostgreSQL, SeaweedFS S3, an MLflow server with auth, Airflow's ``dag.test()`` — with
two API replicas sharing the evidence: the ``sprout_rollout`` DAG, with no manual step, aborts a deliberately worse
challenger (the champion never changes) and promotes one at least as good, which both replicas then serve.

The worse one is a real Sprout version: version 1, trained on dandelion/grass with every label swapped (a first
model clears the gate on its own labels); an admin then corrects the labels, version 2 trained on them becomes the
champion, and an admin starts a rollout of version 1 — as an admin may for any registered Sprout version, and as
the offline gate would never let a candidate through.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.models import RolloutMode, Sample
from model.core.accounts import create_user
from model.data.importer import import_directory
from model.learning.promotion import train
from model.review.actions import relabel_sample
from model.rollout.judge import begin, status
from model.runtime.services import Services
from tests import servers
from tests.dags.dag_runs import Driver, run_dag, xcom
from tests.utils.datasets import write_tree
from tests.utils.images import dataset_images
from tests.utils.real_stack import real_stack_env, replicas
from tests.utils.services import migrated_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAG_ID = "sprout_rollout"
TRAINED, LIVE = 30, 16  # photos per label trained on; live requests per round, all reviewed
SWAP = {"dandelion": "grass", "grass": "dandelion"}
PASSWORD = "rollout-reviewer-password"
RULE = {"SPROUT_ROLLOUT_MIN_REVIEWED": "12"}  # 12 reviewed images decide (the defaults: docs/concepts/rollout.md)


def live_round(urls: list[str], offset: int, headers: dict[str, str]) -> list[tuple[str, bytes]]:
    """``LIVE`` photos neither version saw, predicted concurrently by every replica (each photo by one), then sent
    for review and approved as their true label."""
    images = [(label, dataset_images(label, TRAINED + offset + i + 1)[-1].read_bytes())
              for i in range(LIVE // 2) for label in SWAP]

    def predict(job: tuple[int, bytes]) -> str:
        index, data = job
        resp = httpx.post(f"{urls[index % len(urls)]}/predict", files={"file": ("x.jpg", data, "image/jpeg")},
                          timeout=60)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["model_version"])

    with ThreadPoolExecutor(8) as pool:  # real concurrency: both replicas record at once
        assert set(pool.map(predict, enumerate(data for _, data in images))) == {"2"}
    for label, data in images:
        sample = httpx.post(f"{urls[0]}/samples", files={"file": ("x.jpg", data, "image/jpeg")},
                            data={"label": label}, headers=headers, timeout=60)
        assert sample.status_code == 201, sample.text
        review = httpx.post(f"{urls[1]}/admin/samples/{sample.json()['id']}/review",
                            json={"action": "approve", "label": label}, headers=headers, timeout=60)
        assert review.status_code == 200, review.text
    return images


def evidence_of(svc: Services, reviewed: int, timeout: float = 60) -> dict[str, Any]:
    """The open (or latest) rollout's evidence once ``reviewed`` pairs are in (the replicas write every second)."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(svc)[0].evidence.to_dict()
        if current["reviewed"] >= reviewed or time.monotonic() > deadline:
            return current
        time.sleep(1)


def test_the_dag_aborts_a_worse_challenger_and_promotes_a_better_one_shared_by_two_replicas(
    driver: Driver, fresh_pg_url: str, s3_server: servers.S3Server, mlflow: servers.MlflowServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env, settings = real_stack_env(tmp_path, fresh_pg_url, s3_server, mlflow, monkeypatch,
                                   bucket=f"rollout-{uuid.uuid4().hex[:8]}",
                                   model=f"sprout-rollout-{uuid.uuid4().hex[:8]}", SPROUT_MODEL_POLL_SECONDS="1",
                                   SPROUT_GATE_MIN_ACCURACY="0.5", **RULE)
    svc = migrated_services(settings)
    photos = [(label, path) for label in SWAP for path in dataset_images(label, TRAINED)]
    with svc.session() as session:
        import_directory(session, svc.store, write_tree([(SWAP[lbl], p) for lbl, p in photos], tmp_path / "swapped"))
        create_user(session, username="rollout-admin", password=PASSWORD, is_admin=True)
    first = train(svc, force=True, backbone_name="efficientnet_lite0")
    assert first.promoted and first.version == "1", first.to_dict()
    with svc.session() as session:  # an admin corrects every label (audited relabels)
        for label, path in photos:
            sample = session.query(Sample).filter_by(sha256=hashlib.sha256(path.read_bytes()).hexdigest()).one()
            relabel_sample(session, svc.store, sample_id=sample.id, label=label, reviewer="rollout-admin")
    second = train(svc, force=True, backbone_name="efficientnet_lite0")
    assert second.promoted and second.version == "2", second.to_dict()
    started = begin(svc, "1", mode=RolloutMode.SHADOW, by="rollout-admin")  # the swapped-label version
    assert (started.rollout.challenger_version, started.rollout.champion_version) == ("1", "2")

    with replicas(env, tmp_path) as urls:
        token = httpx.post(f"{urls[0]}/auth/token", data={"username": "rollout-admin", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        live_round(urls, 0, headers)
        evidence = evidence_of(svc, LIVE)
        assert evidence["reviewed"] == LIVE and evidence["shadowed"] == LIVE, evidence  # both replicas', once each
        assert evidence["only_champion_right"] > evidence["only_challenger_right"], evidence

        judged = driver("run", DAG_ID, "2026-11-23T00:00:00+00:00", "{}", env=env, timeout=900)
        assert judged["state"] == "success", judged["log"]
        aborted = xcom(judged, "judge_rollout")
        assert (aborted["outcome"], aborted["decided_by"]) == ("aborted", "rule"), aborted
        assert "significantly worse" in aborted["reason"]
        for url in urls:
            assert httpx.get(f"{url}/models", timeout=30).json()["champion"] == "2"  # never changed
        assert svc.registry.challenger() is None

        # at least as good: a new candidate on the same data, made the challenger by SPROUT_ROLLOUT=shadow
        shadow = Services.from_settings(settings.model_copy(update={"rollout": "shadow"}))
        third = train(shadow, force=True, backbone_name="efficientnet_lite0")
        assert not third.promoted and third.version == "3", third.to_dict()
        deadline = time.monotonic() + 30
        while any(httpx.get(f"{u}/models", timeout=30).json()["challenger"] != "3" for u in urls):
            assert time.monotonic() < deadline, "the replicas did not load the challenger"
            time.sleep(0.5)
        live_round(urls, LIVE // 2, headers)
        evidence_of(svc, LIVE)
        promoted = run_dag(driver, DAG_ID, "2026-11-23T00:05:00+00:00", home=tmp_path / "home", env=env)
        assert promoted["state"] == "success", promoted["log"]
        decided = xcom(promoted, "judge_rollout")
        assert (decided["outcome"], decided["challenger"], decided["decided_by"]) == ("promoted", "3", "rule"), \
            decided
        deadline = time.monotonic() + 30
        while any(httpx.get(f"{u}/models", timeout=30).json()["serving"] != "3" for u in urls):
            assert time.monotonic() < deadline, "a replica still serves the old champion"
            time.sleep(0.5)
        tags = svc.registry.client.get_model_version(settings.model_name, "3").tags
        assert tags["sprout.rollout.outcome"] == "promoted" and tags["sprout.rollout.role"] == "challenger"
