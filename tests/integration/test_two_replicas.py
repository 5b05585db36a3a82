"""Two API replicas on the real stack agree: PostgreSQL, SeaweedFS S3, an MLflow server with auth and the Redis of the
shared rate-limit store, under concurrent uploads, reviews and predictions sent to both replicas at once.

What the replicas must share, each checked for nothing lost, nothing double-counted and nothing served stale beyond
the poll interval: the samples (one image uploaded to both at once is one sample, one object), the reviews (two
reviewers deciding one sample on two replicas: one wins, the other gets 409), the rate limits (counted together,
not once per replica), the capture cap, the drift window (every prediction once), the champion after a change made
with the CLI, the challenger of a rollout started with the CLI, and the rollout's observation cap.

One home for the module: three scene labels (forest, glacier, sea), 20 photos each, versions 1 and 2 trained on
efficientnet_lite0; the photos after the first 20 of each label are traffic the models never saw. Every request
names its own client address (``X-Forwarded-For`` from the trusted 127.0.0.1), so only the rate-limit test's
requests share one.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from db.models import RecentPrediction, Review, RolloutObservation, Sample, SampleSource
from model.core.accounts import create_user
from model.data.importer import import_directory
from model.learning.promotion import train
from model.runtime.services import Services
from tests import servers
from tests.utils.datasets import scenes_tree
from tests.utils.live_api import ADMIN, ADMIN_PASSWORD, REVIEWER, REVIEWER_PASSWORD, LiveApi, sprout
from tests.utils.paths import SCENES
from tests.utils.real_stack import real_stack_env, replicas
from tests.utils.services import migrated_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LABELS = ("forest", "glacier", "sea")
TRAINED = 20  # photos per label in the home; the next ones are live traffic
POLL_S = 2.0  # SPROUT_MODEL_POLL_SECONDS: how often a replica follows the aliases and the open rollout
LOAD_S = 6.0  # and at most this long to download and load a version it has not served yet (2 busy cores)
RATE = 12  # uploads and predictions a minute per client address
LOGIN_FAILURES = 5  # failed logins a minute per user name and client address
CAPTURE_CAP = 6  # captures an hour, all replicas together
MAX_OBSERVATIONS = 100  # rollout observations kept per rollout (the smallest the settings allow)
SETTINGS = {
    "SPROUT_MODEL_POLL_SECONDS": str(POLL_S), "SPROUT_GATE_MIN_ACCURACY": "0.5",
    "SPROUT_TRUSTED_PROXIES": "127.0.0.1",
    "SPROUT_UPLOADS_PER_MINUTE": str(RATE), "SPROUT_PREDICTIONS_PER_MINUTE": str(RATE),
    "SPROUT_LOGIN_FAILURES_PER_USER": str(LOGIN_FAILURES),
    "SPROUT_CAPTURE_SAMPLE_RATE": "1.0", "SPROUT_CAPTURE_PER_HOUR": str(CAPTURE_CAP),
    "SPROUT_DRIFT_WINDOW": "5000", "SPROUT_DRIFT_FLUSH_SECONDS": "0.5", "SPROUT_DRIFT_REFRESH_SECONDS": "1",
    "SPROUT_ROLLOUT_MAX_OBSERVATIONS": str(MAX_OBSERVATIONS), "SPROUT_SHADOW_QUEUE": "1000",
    "SPROUT_ROLLOUT_METRICS_SECONDS": "1",
}
T = TypeVar("T")
_addresses = itertools.count(1)


@dataclass(frozen=True)
class Pair:
    """The home on the real servers, its services here, and its two replicas (each a LiveApi: URL and logins)."""

    svc: Services
    env: dict[str, str]
    home: Path
    bucket: str
    s3: servers.S3Server
    apis: list[LiveApi]
    headers: list[dict[str, str]]  # a reviewer's token for replica 0, an admin's for replica 1


def unseen(label: str, index: int) -> tuple[str, bytes]:
    """The ``index``-th scene photo of ``label`` that the home does not hold: (label, bytes)."""
    return label, sorted((SCENES / label).glob("*.jpg"))[TRAINED + index].read_bytes()


def photos(first: int, count: int) -> list[tuple[str, bytes]]:
    """``count`` unseen photos of each label from ``first`` on, the labels interleaved."""
    return [unseen(label, i) for i in range(first, first + count) for label in LABELS]


def client() -> dict[str, str]:
    """A client address of its own (the rate limits count per address)."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}


def image(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("photo.jpg", data, "image/jpeg")}


def at_once(jobs: list[Callable[[], T]]) -> list[T]:
    """Run every job on a thread of its own, all released together: requests that really race."""
    barrier = threading.Barrier(len(jobs))

    def run(job: Callable[[], T]) -> T:
        barrier.wait(timeout=60)
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def predict_all(urls: list[str], images: list[bytes]) -> list[dict[str, Any]]:
    """``/predict`` every image once, on the replicas in turn, eight at a time, each from an address of its own."""
    jobs = [(urls[i % len(urls)], data, client()) for i, data in enumerate(images)]

    def one(job: tuple[str, bytes, dict[str, str]]) -> dict[str, Any]:
        url, data, headers = job
        resp = httpx.post(f"{url}/predict", files=image(data), headers=headers, timeout=60)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, jobs))


def eventually(check: Callable[[], T], what: str, timeout: float = 30, every: float = 0.2) -> T:
    """``check()`` once it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} (after {timeout:g} s)"
        time.sleep(every)
    return value


def delay_until(apis: list[LiveApi], shows: Callable[[LiveApi], bool], what: str, timeout: float = 60) -> float:
    """Seconds from now until every replica ``shows`` it (each asked until it does): the slowest one's."""
    start, seen = time.monotonic(), {}

    def everyone() -> bool:
        for api in apis:
            if api.url not in seen and shows(api):
                seen[api.url] = time.monotonic() - start
        return len(seen) == len(apis)

    eventually(everyone, what, timeout=timeout)
    return max(seen.values())


def total(apis: list[LiveApi], name: str, **labels: str) -> float:
    return sum(api.metric(name, **labels) for api in apis)


def count(svc: Services, query: Any) -> int:
    with svc.session() as session:
        return int(session.scalar(query) or 0)


def objects_of(pair: Pair, sha: str) -> list[str]:
    """Every object key in the store that holds the image ``sha`` (pending, approved under a label, rejected)."""
    listed = pair.s3.client().list_objects(pair.bucket, recursive=True)
    return [o.object_name for o in listed if sha in o.object_name]


@pytest.fixture(scope="module")
def pair(postgres_url: str, s3_server: servers.S3Server, mlflow: servers.MlflowServer, redis_server: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("replicas")
    database = f"t_{uuid.uuid4().hex[:16]}"
    pg_url = servers.create_database(postgres_url, database)
    bucket = f"replicas-{uuid.uuid4().hex[:8]}"
    with pytest.MonkeyPatch.context() as monkeypatch:
        env, settings = real_stack_env(root, pg_url, s3_server, mlflow, monkeypatch, bucket=bucket,
                                       model=f"sprout-replicas-{uuid.uuid4().hex[:8]}",
                                       SPROUT_RATE_LIMIT_STORAGE=redis_server,
                                       SPROUT_SECRET_KEY=secrets.token_urlsafe(48), **SETTINGS)
        svc = migrated_services(settings)
        with svc.session() as session:
            import_directory(session, svc.store, scenes_tree(root / "tree", dict.fromkeys(LABELS, TRAINED)))
            create_user(session, username=REVIEWER, password=REVIEWER_PASSWORD)
            create_user(session, username=ADMIN, password=ADMIN_PASSWORD, is_admin=True)
        for version in ("1", "2"):  # 2: the same data again, at least as good (the gate passes it)
            trained = train(svc, force=True, backbone_name="efficientnet_lite0")
            assert trained.promoted and trained.version == version, trained.to_dict()
        with replicas(env, root) as urls:
            apis = [LiveApi(url=url, home=root / "home") for url in urls]
            yield Pair(svc=svc, env=env, home=root / "home", bucket=bucket, s3=s3_server, apis=apis,
                       headers=[apis[0].headers(), apis[1].headers(admin=True)])
        svc.close()
    servers.drop_database(postgres_url, database)


def test_the_same_image_sent_to_both_replicas_at_once_is_one_sample_and_one_review_wins(pair: Pair) -> None:
    svc, apis, headers = pair.svc, pair.apis, pair.headers
    images = photos(0, 4)  # 12 photos, 4 of each label
    before = count(svc, select(func.count(Sample.id)))

    def upload(replica: int, data: bytes) -> Callable[[], httpx.Response]:
        return lambda: httpx.post(f"{apis[replica].url}/samples", files=image(data),
                                  headers=headers[replica] | client(), timeout=60)

    # every photo four times at once, twice on each replica: 48 uploads racing
    answers = at_once([upload(replica, data) for _, data in images for replica in (0, 1, 0, 1)])
    samples: list[tuple[str, int]] = []  # (true label, sample id)
    for n, (label, data) in enumerate(images):
        mine = answers[4 * n: 4 * n + 4]
        assert sorted(r.status_code for r in mine) == [200, 200, 200, 201], [r.text for r in mine]
        assert len({r.json()["id"] for r in mine}) == 1 and all(r.json()["duplicate"] for r in mine
                                                                if r.status_code == 200)
        sha = hashlib.sha256(data).hexdigest()
        with svc.session() as session:
            rows = session.scalars(select(Sample).where(Sample.sha256 == sha)).all()
            assert [r.id for r in rows] == [mine[0].json()["id"]]  # one row
            assert objects_of(pair, sha) == [rows[0].object_key]  # and one object, where the row says
        samples.append((label, rows[0].id))
    assert count(svc, select(func.count(Sample.id))) == before + len(images)

    stats_before = [httpx.get(f"{api.url}/admin/stats", headers=headers[0]).json() for api in apis]
    assert stats_before[0] == stats_before[1]

    # two reviewers decide each sample at once on two replicas: the reviewer approves it on replica 0 as its true
    # label, the admin rejects it on replica 1
    def review(replica: int, sample_id: int, body: dict[str, str]) -> Callable[[], httpx.Response]:
        return lambda: httpx.post(f"{apis[replica].url}/admin/samples/{sample_id}/review", json=body,
                                  headers=headers[replica], timeout=60)

    decided = at_once([job for label, sample_id in samples for job in (
        review(0, sample_id, {"action": "approve", "label": label}), review(1, sample_id, {"action": "reject"}))])
    approved = 0
    for n, (_, sample_id) in enumerate(samples):
        approve, reject = decided[2 * n], decided[2 * n + 1]
        assert sorted((approve.status_code, reject.status_code)) == [200, 409], (approve.text, reject.text)
        winner, status = (approve, "approved") if approve.status_code == 200 else (reject, "rejected")
        approved += status == "approved"
        assert winner.json()["status"] == status
        with svc.session() as session:
            sample = session.get(Sample, sample_id)
            assert sample is not None and sample.status.value == status
            assert sample.reviewed_by == (REVIEWER if status == "approved" else ADMIN)
            reviews = session.scalars(select(Review).where(Review.sample_id == sample_id)).all()
            assert len(reviews) == 1, [(r.reviewer, r.action) for r in reviews]  # one decision, audited once
            assert objects_of(pair, sample.sha256) == [sample.object_key]  # moved once, nothing left behind
    stats = [httpx.get(f"{api.url}/admin/stats", headers=headers[0]).json() for api in apis]
    assert stats[0] == stats[1]
    assert stats[0]["approved_since_last_run"] == stats_before[0]["approved_since_last_run"] + approved


@pytest.mark.parametrize("route", ["/predict", "/samples", "/auth/token"])
def test_a_rate_limit_is_counted_once_for_both_replicas(pair: Pair, route: str) -> None:
    """A limit per client address (predictions, uploads) or per user name and address (failed logins): twice as many
    requests from one address, half on each replica, sent at once, get exactly the limit's worth of answers and
    429 for the rest (a store per process would let them all through)."""
    limit = LOGIN_FAILURES if route == "/auth/token" else RATE
    _, data = unseen("sea", 16 if route == "/predict" else 17)  # one photo: a duplicate upload is cheap
    body: dict[str, Any] = ({"data": {"username": REVIEWER, "password": "not-the-password-1"}}
                            if route == "/auth/token" else {"files": image(data)})
    address = client()

    def send(replica: int) -> Callable[[], httpx.Response]:
        return lambda: httpx.post(f"{pair.apis[replica].url}{route}", headers=address, timeout=60, **body)

    codes = sorted(r.status_code for r in at_once([send(i % 2) for i in range(2 * limit)]))
    assert codes.count(429) == limit and set(codes[:limit]) <= {200, 201, 401}, codes


def test_every_prediction_is_in_the_drift_window_once_and_captures_stay_within_the_cap(pair: Pair) -> None:
    svc, apis = pair.svc, pair.apis
    champion = apis[0].get("/models")["champion"]
    rows = select(func.count(RecentPrediction.id)).where(RecentPrediction.model_version == champion)
    time.sleep(2)  # the earlier tests' predictions are written (every 0.5 s)
    before = count(svc, rows)
    recorded = total(apis, "sprout_drift_window_recorded_total")
    offered = sum(total(apis, "sprout_captures_total", result=r)
                  for r in ("stored", "duplicate", "capped", "dropped", "refused", "error"))
    images = [data for _, data in photos(4, 12)]  # 36 photos nobody sent yet, every one wanted by capture
    assert len(images) > 2 * CAPTURE_CAP

    answers = predict_all([api.url for api in apis], images)
    assert {a["model_version"] for a in answers} == {champion}
    eventually(lambda: count(svc, rows) >= before + len(images), "the replicas did not write the drift window")
    time.sleep(1.5)  # and nothing more comes
    assert count(svc, rows) == before + len(images)  # every prediction once
    assert total(apis, "sprout_drift_window_recorded_total") == recorded + len(images)
    assert total(apis, "sprout_drift_window_dropped_total") == 0
    window = [httpx.get(f"{api.url}/admin/drift", headers=pair.headers[0], timeout=60).json() for api in apis]
    assert window[0]["n"] == window[1]["n"] == before + len(images), window
    eventually(lambda: {api.metric("sprout_drift_window_size") for api in apis} == {before + len(images)},
               "a replica's drift gauge does not count the window", timeout=10)

    eventually(lambda: sum(total(apis, "sprout_captures_total", result=r) for r in
                           ("stored", "duplicate", "capped", "dropped", "refused", "error")) >= offered + len(images),
               "the replicas did not handle every capture")
    assert count(svc, select(func.count(Sample.id)).where(Sample.source == SampleSource.CAPTURE)) == CAPTURE_CAP
    assert total(apis, "sprout_captures_total", result="stored") == CAPTURE_CAP


def test_both_replicas_serve_a_new_champion_within_the_poll_interval(pair: Pair) -> None:
    _, probe = unseen("glacier", 18)
    for version in ("1", "2"):  # a rollback, then a promotion, with the CLI
        assert sprout(pair.home, "rollback", version, env=pair.env)["champion"] == version
        stale = delay_until(pair.apis, lambda api, v=version: api.get("/readyz")["checks"]["model"] == f"version {v}",
                            f"a replica still serves the old champion, not {version}")  # /readyz: no registry call
        assert stale <= POLL_S + LOAD_S, f"version {version} served {stale:.1f} s after the change"
        for api in pair.apis:
            assert (api.get("/models")["champion"], api.get("/models")["serving"]) == (version, version)
            resp = httpx.post(f"{api.url}/predict", files=image(probe), headers=client(), timeout=60)
            assert resp.json()["model_version"] == version, resp.text
        print(f"\nversion {version} served by both replicas {stale:.1f} s after the CLI returned")  # noqa: T201


def test_a_rollout_started_with_the_cli_is_followed_by_both_replicas_and_its_cap_holds(pair: Pair) -> None:
    svc, apis, urls = pair.svc, pair.apis, [api.url for api in pair.apis]
    assert all(api.get("/rollouts")["challenger"] is None for api in apis)  # and each replica's list is fresh
    started = sprout(pair.home, "rollout", "start", "1", "--by", ADMIN, env=pair.env)
    rollout_id = started["id"]

    def follows(api: LiveApi, challenger: str | None, is_open: bool) -> bool:
        """Whether the replica names ``challenger``; one that does shows its rollout as it is (never a stale list)."""
        view = api.get("/rollouts")
        if view["challenger"] != challenger:
            return False
        latest = view["rollouts"][0] if view["rollouts"] else {}
        assert (latest.get("id"), latest.get("open")) == (rollout_id, is_open), view
        return True

    stale = delay_until(apis, lambda api: follows(api, "1", True), "a replica does not score the challenger")
    assert stale <= POLL_S + LOAD_S, f"the challenger was scored by both replicas {stale:.1f} s after the CLI"
    assert all(api.get("/models")["challenger"] == "1" for api in apis)

    # 63 photos, each predicted twice, spread over both replicas: 126 shadowed requests, more than the cap
    images = [data for _, data in photos(19, 21)] * 2
    scored = total(apis, "sprout_rollout_scored_total", mode="shadow", outcome="agree") + total(
        apis, "sprout_rollout_scored_total", mode="shadow", outcome="disagree")
    assert len(images) > MAX_OBSERVATIONS
    predict_all(urls, images)
    eventually(lambda: sum(total(apis, "sprout_rollout_scored_total", mode="shadow", outcome=o)
                           for o in ("agree", "disagree", "error", "dropped")) >= scored + len(images),
               "the replicas did not score every shadowed request", timeout=60)
    time.sleep(2.5)  # written every second
    kept = count(svc, select(func.count(RolloutObservation.id)).where(RolloutObservation.rollout_id == rollout_id))
    assert kept == MAX_OBSERVATIONS, f"{kept} observations kept for a cap of {MAX_OBSERVATIONS}"

    # an admin aborts it through replica 0 while both replicas are watched: none shows the rollout open once it
    # stopped scoring the challenger, and both stop within the poll interval of the answer
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(httpx.post, f"{urls[0]}/admin/rollouts/current/abort", json={"rollout_id": rollout_id},
                           headers=pair.headers[1], timeout=60)
        while not call.done():
            for api in apis:
                follows(api, None, False)
        aborted = call.result()
    assert aborted.status_code == 200 and aborted.json()["outcome"] == "aborted", aborted.text
    stale = delay_until(apis, lambda api: follows(api, None, False), "a replica still scores the aborted challenger")
    assert stale <= POLL_S + 3, f"the abort showed on both replicas {stale:.1f} s after it was answered"
    assert all(api.get("/models")["challenger"] is None for api in apis)
