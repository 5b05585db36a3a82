"""A hung or stopped dependency stalls nothing. Freeze SeaweedFS, then PostgreSQL (SIGSTOP, as a partition or an
overloaded server behaves) under 60 uploads in flight: uploads get a 503 with a sentence within ~10 s, /readyz
answers within 2 s naming the failed check, /healthz and /predict keep their latency, and after SIGCONT everything
works again without a restart. Stop each during uploads and reviews: 503s, no orphan rows, and the same requests
succeed once it is back. Real servers, the API under uvicorn, 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from model.core.accounts import create_user
from model.core.settings import Settings
from model.data.fsck import FsckReport, fsck
from model.data.importer import import_directory
from model.learning.promotion import train
from model.runtime.services import Services
from tests import servers
from tests.utils.datasets import dataset_tree
from tests.utils.images import dataset_images, random_image_bytes
from tests.utils.paths import REPO_ROOT
from tests.utils.readiness import http_ok, wait_until_ready
from tests.utils.services import migrated_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IN_FLIGHT = 60
UPLOAD_DEADLINE_S = 15.0  # "within ~10 s": the bounded timeouts are ~8-10 s, plus a loaded 2-core machine


def pids_of(pattern: str) -> list[int]:
    """Processes whose command line contains ``pattern``, and their children."""
    found = {int(p) for p in subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True,
                                            text=True).stdout.split()}
    for pid in list(found):
        found |= {int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                 text=True).stdout.split()}
    return sorted(found - {os.getpid()})


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    assert pids, "nothing to freeze"
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a backend that just exited
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def predict_p50(base: str, photo: bytes, n: int = 15) -> float:
    times = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(n):
            start = time.perf_counter()
            assert client.post("/predict", files={"file": ("p.jpg", photo, "image/jpeg")}).status_code == 200
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def upload(base: str, seed: int) -> tuple[int, float, str]:
    start = time.perf_counter()
    data = random_image_bytes("JPEG", size=(120, 90), seed=seed)
    try:
        resp = httpx.post(f"{base}/samples", files={"file": ("u.jpg", data, "image/jpeg")}, timeout=60)
    except httpx.HTTPError as exc:
        return 0, time.perf_counter() - start, repr(exc)
    return resp.status_code, time.perf_counter() - start, resp.text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Own PostgreSQL and SeaweedFS (freezing them must not touch other tests) and the API on them."""
    tmp = tmp_path_factory.mktemp("hung")
    with servers.postgres_server() as pg_url, servers.seaweedfs_server() as s3:
        env = {"SPROUT_HOME": str(tmp / "home"), "SPROUT_DATABASE_URL": pg_url, "SPROUT_S3_ENDPOINT": s3.endpoint,
               "SPROUT_S3_ACCESS_KEY": s3.access_key, "SPROUT_S3_SECRET_KEY": s3.secret_key,
               "SPROUT_S3_BUCKET": f"hung-{uuid.uuid4().hex[:8]}", "SPROUT_GATE_MIN_ACCURACY": "0.5",
               "SPROUT_UPLOADS_PER_MINUTE": "1000"}  # two rounds of 60 uploads from one address, a minute apart
        settings = Settings(_env_file=None, **{k.removeprefix("SPROUT_").lower(): v  # type: ignore[arg-type]
                                               for k, v in env.items()})
        svc = migrated_services(settings)
        tree = dataset_tree(tmp, 12)
        with svc.session() as session:
            import_directory(session, svc.store, tree)
            create_user(session, username="hung-reviewer", password="hung-reviewer-password")
        assert train(svc, force=True).promoted
        svc.close()
        port = servers.free_port()
        log = tmp / "api.log"
        api_env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | env
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                                     "--port", str(port), "--log-level", "warning"], cwd=REPO_ROOT, env=api_env,
                                    stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(http_ok(f"{base}/readyz"), what="the API", timeout=120, proc=proc, log=log)
            pg_port = pg_url.rsplit(":", 1)[1].split("/")[0]
            yield {"base": base, "log": log, "photo": dataset_images("grass", 14)[-1].read_bytes(),
                   "pg_url": pg_url, "s3": s3, "settings": settings,
                   "s3_pattern": f"-s3.port={s3.endpoint.rsplit(':', 1)[1]}", "pg_pattern": f"-p {pg_port}"}
        finally:
            proc.terminate()
            proc.wait(20)


@pytest.mark.parametrize("dependency", ["storage", "database"])
def test_a_frozen_dependency_gives_503s_in_bounded_time_and_predictions_keep_their_latency(
    stack: dict, dependency: str
) -> None:
    base, photo = stack["base"], stack["photo"]
    normal = predict_p50(base, photo)
    pids = pids_of(stack["s3_pattern"] if dependency == "storage" else stack["pg_pattern"])  # backends: now
    seed0 = 10_000 if dependency == "storage" else 20_000
    with frozen(pids), ThreadPoolExecutor(IN_FLIGHT) as pool:
        uploads = [pool.submit(upload, base, seed0 + i) for i in range(IN_FLIGHT)]
        time.sleep(1.0)  # the uploads are now stuck on the frozen server
        start = time.perf_counter()
        ready = httpx.get(f"{base}/readyz", timeout=10)
        ready_s = time.perf_counter() - start
        health = httpx.get(f"{base}/healthz", timeout=10)
        during = predict_p50(base, photo)
        results = [u.result() for u in uploads]
    assert ready.status_code == 503 and ready_s <= 2.5, (ready_s, ready.text)
    assert not ready.json()["checks"][dependency] == "ok" and ready.json()["checks"]["model"].startswith("version")
    assert health.status_code == 200
    assert during <= 2 * normal + 0.05, f"/predict p50 {during:.3f} s while {dependency} hangs vs {normal:.3f} s"
    codes = sorted({code for code, _, _ in results})
    assert 500 not in codes and 0 not in codes, results[:3]
    refused = [(code, took, text) for code, took, text in results if code == 503]
    assert refused, codes  # the frozen dependency was really needed
    assert all(took <= UPLOAD_DEADLINE_S for _, took, _ in refused), max(took for _, took, _ in refused)
    assert all("try again shortly" in text for _, _, text in refused), refused[0]
    # SIGCONT: the same kind of request succeeds again, without restarting the API.
    wait_until_ready(http_ok(f"{base}/readyz"), what="the API after SIGCONT", timeout=60, log=stack["log"])
    code, _, text = upload(base, seed0 + 999)
    assert code == 201, text


def review(base: str, headers: dict[str, str], sample_id: int) -> tuple[int, str]:
    try:
        resp = httpx.post(f"{base}/admin/samples/{sample_id}/review", json={"action": "approve", "label": "grass"},
                          headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return resp.status_code, resp.text


@pytest.mark.parametrize("dependency", ["storage", "database"])
def test_a_stopped_dependency_gives_503s_and_the_same_requests_succeed_after_its_restart(
    stack: dict, dependency: str
) -> None:
    """Stop SeaweedFS, then PostgreSQL, during uploads and reviews: 503 with a sentence, never a 500, no row
    without its object; after the restart the very same requests succeed (the API is not restarted)."""
    base = stack["base"]
    seed0 = 30_000 if dependency == "storage" else 40_000
    login = httpx.post(f"{base}/auth/token", data={"username": "hung-reviewer", "password": "hung-reviewer-password"})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    to_review = []
    for i in range(8):
        code, _, text = upload(base, seed0 + i)
        assert code == 201, text
        to_review.append(int(json.loads(text)["id"]))
    # An upload frozen between its object and its row (the freeze test above) leaves an orphan object, never
    # a row without its object; this test must add neither.
    orphans_before = set(check_store(stack).orphans)
    stopped = (servers.seaweedfs_stopped(stack["s3"]) if dependency == "storage"
               else servers.postgres_stopped(stack["pg_url"]))
    with stopped, ThreadPoolExecutor(16) as pool:
        uploads = [pool.submit(upload, base, seed0 + 100 + i) for i in range(16)]
        reviews = [pool.submit(review, base, headers, sample_id) for sample_id in to_review]
        up_results, review_results = [u.result() for u in uploads], [r.result() for r in reviews]
    answers = [(code, text) for code, _, text in up_results] + review_results
    assert {code for code, _ in answers} == {503}, sorted({code for code, _ in answers})
    assert all("try again shortly" in text for _, text in answers), answers[0]

    wait_until_ready(http_ok(f"{base}/readyz"), what=f"the API after {dependency} restarted", timeout=90,
                     log=stack["log"])
    for i in range(16):
        code, _, text = upload(base, seed0 + 100 + i)
        assert code == 201, text
    for sample_id in to_review:
        code, text = review(base, headers, sample_id)
        assert code == 200 and json.loads(text)["status"] == "approved", text

    report = check_store(stack)
    assert report.ok and not report.missing, report  # no row without its object
    assert set(report.orphans) <= orphans_before, report  # and no object this test left without its row


def check_store(stack: dict) -> FsckReport:
    """fsck, read-only: rows without objects (``missing``) and objects without rows (``orphans``)."""
    svc = Services.from_settings(stack["settings"])
    try:
        with svc.session() as session:
            return fsck(session, svc.store, repair=False)
    finally:
        svc.close()
