"""kill -9 in the middle of a review's move (copy → commit → delete), restart, ``sprout fsck``: nothing approved is
lost and every row agrees with the store. The API runs under uvicorn on real PostgreSQL and SeaweedFS; the kill
comes from the fault-injection hook in the move (``SPROUT_CRASH_AT``, a test setting refused in production)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from db import queries
from db.models import Review, SampleStatus
from model.core.accounts import create_user
from model.core.settings import Settings
from model.data.storage import labeled_key, pending_key
from tests import servers
from tests.utils.images import dataset_images
from tests.utils.live_api import wait_ready
from tests.utils.paths import REPO_ROOT
from tests.utils.services import migrated_services

pytestmark = [pytest.mark.integration]
REVIEWER, PASSWORD = "crash-reviewer", "crash-reviewer-password"
SPROUT = str(Path(sys.executable).with_name("sprout"))


@pytest.fixture
def sprout_env(fresh_pg_url: str, s3_server: servers.S3Server, tmp_path: Path) -> dict[str, str]:
    env = {"SPROUT_HOME": str(tmp_path / "home"), "SPROUT_DATABASE_URL": fresh_pg_url,
           "SPROUT_S3_ENDPOINT": s3_server.endpoint, "SPROUT_S3_ACCESS_KEY": s3_server.access_key,
           "SPROUT_S3_SECRET_KEY": s3_server.secret_key, "SPROUT_S3_BUCKET": f"crash-{uuid.uuid4().hex[:8]}"}
    svc = migrated_services(Settings(_env_file=None, **{k.removeprefix("SPROUT_").lower(): v  # type: ignore[arg-type]
                                                        for k, v in env.items()}))
    with svc.session() as session:
        create_user(session, username=REVIEWER, password=PASSWORD)
    svc.close()
    return {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | env


@contextmanager
def api(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """uvicorn on 127.0.0.1 (no model: the samples and review routes need none)."""
    port = servers.free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning"], cwd=REPO_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log, path="/healthz")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)


def token(url: str) -> dict[str, str]:
    resp = httpx.post(f"{url}/auth/token", data={"username": REVIEWER, "password": PASSWORD}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


@pytest.mark.parametrize("point", ["move.after_copy", "move.after_commit"])
def test_a_review_killed_mid_move_loses_nothing(sprout_env: dict[str, str], tmp_path: Path, point: str) -> None:
    photos = [p.read_bytes() for p in dataset_images("dandelion", 3)]
    with api(sprout_env | {"SPROUT_CRASH_AT": point}, tmp_path / "api.log") as (url, proc):
        ids = []
        for data in photos:
            resp = httpx.post(f"{url}/samples", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30)
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        with pytest.raises(httpx.TransportError):  # the API dies while answering
            httpx.post(f"{url}/admin/samples/{ids[0]}/review", json={"action": "approve", "label": "dandelion"},
                       headers=token(url), timeout=30)
        assert proc.wait(10) == -9, "the crash point did not kill the API"

    svc = migrated_services(Settings(_env_file=None, **{k.removeprefix("SPROUT_").lower(): v  # type: ignore[arg-type]
                                                        for k, v in sprout_env.items() if k.startswith("SPROUT_")}))
    with svc.session() as session:
        crashed = queries.find_sample(session, sample_id=ids[0])
        assert crashed is not None
        sha = crashed.sha256
        pending, labeled = pending_key(sha, "jpg"), labeled_key("dandelion", sha, "jpg")
        # Both copies exist: the kill came after the copy and before the delete.
        assert svc.store.exists(pending) and svc.store.exists(labeled)
        if point == "move.after_copy":  # not committed: still pending, the new copy is a leftover
            assert crashed.status is SampleStatus.PENDING and crashed.object_key == pending
        else:  # committed: approved, the old copy is a leftover
            assert crashed.status is SampleStatus.APPROVED and crashed.object_key == labeled

    # The operator restarts the API and runs fsck while it serves.
    with api(sprout_env, tmp_path / "api-2.log") as (url, _proc):
        fsck = subprocess.run([SPROUT, "--json", "fsck", "--grace-minutes", "0"], env=sprout_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert fsck.returncode == 0, fsck.stderr[-2000:]
        report = json.loads(fsck.stdout.strip().splitlines()[-1])
        assert report["ok"] and not report["missing"] and not report["orphans"], report
        leftover = labeled if point == "move.after_copy" else pending
        assert report["removed_leftovers"] == [leftover], report

        headers = token(url)
        for sample_id in ids:  # every review now succeeds (or, for the committed one, is already done)
            resp = httpx.post(f"{url}/admin/samples/{sample_id}/review",
                              json={"action": "approve", "label": "dandelion"}, headers=headers, timeout=30)
            committed = sample_id == ids[0] and point == "move.after_commit"
            assert resp.status_code == (409 if committed else 200), resp.text
        approved = httpx.get(f"{url}/admin/samples", params={"status": "approved"}, headers=headers,
                             timeout=30).json()
        assert approved["count"] == len(photos)

    with svc.session() as session:
        rows = queries.all_samples(session)
        keys = set(svc.store.list())
        assert {row.object_key for row in rows} == keys  # one object per row, each where its row says
        assert all(row.status is SampleStatus.APPROVED for row in rows)
        audit = session.scalars(select(Review.sample_id)).all()
        assert sorted(audit) == sorted(ids)  # one decision, one audit entry per sample
    svc.close()


def test_the_crash_setting_is_refused_in_production() -> None:
    with pytest.raises(ValueError, match="SPROUT_CRASH_AT"):
        Settings(_env_file=None, env="production", secret_key="k" * 40, crash_at="move.after_copy")
