"""A real Sprout API for the UI tests: ``uvicorn api.main:app`` in a subprocess, on a trained embedded home.

The home is prepared the way a person would: ``sprout import`` of a small tree (20 dandelion + 20 grass photos
from the shared data set), ``sprout train --force`` (version 1 becomes the champion) and
``sprout users add reviewer`` with the password piped on stdin. Then uvicorn starts on a free port with
``SPROUT_HOME`` pointing there, and the fixture waits until ``/readyz`` says the model is served.

``live_api`` is a session fixture of ``tests/conftest.py``, shared by the UI, monitoring and e2e tests
(training once, ~40 s on two cores).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.models import Split
from model.data.samples import split_for
from tests.utils.datasets import dataset_tree
from tests.utils.images import dataset_images
from tests.utils.markers import require_marker
from tests.utils.paths import REPO_ROOT, require_dataset, shared_graphs
from tests.utils.readiness import ServerStartError, http_ok, wait_until_ready
from tests.utils.services import TEST_SPLIT_KEY

REVIEWER, REVIEWER_PASSWORD = "reviewer", "reviewer-password-1"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password-12"
PER_LABEL = 20  # photos per label in the training tree; photos after these are never seen by the model
SPROUT = str(Path(sys.executable).with_name("sprout"))
START_TIMEOUT_S = 120


@dataclass(frozen=True)
class LiveApi:
    """A running API: its URL, its home, a reviewer's credentials and a few calls the tests need."""

    url: str
    home: Path
    username: str = REVIEWER
    password: str = REVIEWER_PASSWORD
    admin_username: str = ADMIN
    admin_password: str = ADMIN_PASSWORD

    def token(self, *, admin: bool = False) -> str:
        user, password = (self.admin_username, self.admin_password) if admin else (self.username, self.password)
        resp = httpx.post(f"{self.url}/auth/token", data={"username": user, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def headers(self, *, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(admin=admin)}"}

    def submit(self, data: bytes, name: str = "photo.jpg", label: str | None = None,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
        """``POST /samples`` (anonymous unless ``headers`` carry a token): a pending sample (the response JSON)."""
        resp = httpx.post(f"{self.url}/samples", files={"file": (name, data, "image/jpeg")},
                          data={"label": label} if label else {}, headers=headers, timeout=60)
        assert resp.status_code in (200, 201), resp.text
        assert resp.json()["id"] is not None, "an anonymous duplicate names no sample: send an unused image or a token"
        return resp.json()

    def get(self, path: str) -> Any:
        """A public ``GET`` (e.g. ``/models``): its JSON."""
        resp = httpx.get(f"{self.url}{path}", timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def samples(self, status: str, limit: int = 200) -> list[dict[str, Any]]:
        """``GET /admin/samples`` with ``status``, newest first."""
        resp = httpx.get(f"{self.url}/admin/samples", params={"status": status, "limit": limit, "order": "newest"},
                         headers=self.headers())
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def reject(self, *sample_ids: int) -> None:
        """Reject pending samples as a reviewer (a test's cleanup: the shared API's queue stays as others expect)."""
        for sample_id in sample_ids:
            resp = httpx.post(f"{self.url}/admin/samples/{sample_id}/review", json={"action": "reject"},
                              headers=self.headers())
            assert resp.status_code == 200, resp.text

    def metric(self, name: str, **labels: str) -> float:
        """The value of one Prometheus sample of ``GET /metrics`` (0 when it was never recorded)."""
        text = httpx.get(f"{self.url}/metrics").text
        wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
        prefix = f"{name}{{{wanted}}} " if wanted else f"{name} "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.split()[-1])
        return 0.0


def unused_photo(label: str, index: int) -> Path:
    """The ``index``-th photo of ``label`` that the fixture's model was not trained on (tests pick distinct ones:
    the API deduplicates by content, so a photo submitted twice is the same sample)."""
    return dataset_images(label, PER_LABEL + index + 1)[-1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sprout_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without anybody's ``SPROUT_*`` settings, plus the embedded home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
    # A small model (20 photos per label), not a good one: the gate's floor is lowered as for the API tests.
    return env | shared_graphs() | {"SPROUT_HOME": str(home), "PYTHONPATH": str(REPO_ROOT),
                                    "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY, "SPROUT_GATE_MIN_ACCURACY": "0.5"} | extra


def sprout(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``sprout --json ARGS`` as a person would (``env``: more settings); its one JSON object."""
    proc = subprocess.run([SPROUT, "--json", *args], input=stdin, capture_output=True, text=True,
                          env=sprout_env(home, **(env or {})), cwd=home.parent, timeout=900)
    assert proc.returncode == 0, f"sprout {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mislabelled_photos() -> list[Path]:
    """Two grass photos the live home imports as dandelion: far beyond the photos tests use unseen, and in the
    training split (judged out-of-fold: the candidate that finds them is trained on the rest of train+val)."""
    later = dataset_images("grass", 150)[100:]
    return [p for p in later if split_for(hashlib.sha256(p.read_bytes()).hexdigest(), key=TEST_SPLIT_KEY)
            is Split.TRAIN][:2]


def prepare_home(root: Path) -> Path:
    """``root/home``: the small tree imported, version 1 trained and promoted, two mislabelled photos and a
    candidate trained on them (not promoted), a reviewer and an admin."""
    require_dataset()
    tree = dataset_tree(root, PER_LABEL)
    home = root / "home"
    sprout(home, "db", "upgrade")
    imported = sprout(home, "import", str(tree))
    assert imported["added"] == 2 * PER_LABEL, imported
    trained = sprout(home, "train", "--force")
    assert trained["promoted"] and trained["version"] == "1", trained
    # Two grass photos filed as dandelion, and a candidate trained on them that is never promoted: its
    # out-of-fold probabilities give the Review page's suspects while version 1 (clean) keeps serving.
    suspects = root / "suspects" / "dandelion"
    suspects.mkdir(parents=True)
    for path in mislabelled_photos():
        shutil.copyfile(path, suspects / path.name)
    assert sprout(home, "import", str(suspects.parent))["added"] == 2
    candidate = sprout(home, "train-candidate", "--force")  # every candidate, as version 1 (the Models page)
    assert candidate["run_id"] and not candidate["promoted"], candidate
    add_reviewer(home)
    return home


def one_version_home(root: Path, per_label: int = 40) -> Path:
    """``root/home`` of its own — for a test that changes the champion, which the shared API's tests must not
    see —: dandelion/grass (``per_label`` photos each), version 1 trained on lite0, a reviewer and an admin."""
    home = root / "home"
    add_reviewer(home)
    sprout(home, "import", str(dataset_tree(root, per_label)))
    assert sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")["version"] == "1"
    return home


def add_reviewer(home: Path) -> None:
    """``echo PASSWORD | sprout users add reviewer`` and the same for an admin."""
    home.mkdir(parents=True, exist_ok=True)
    sprout(home, "db", "upgrade")  # idempotent: an empty home gets its schema first
    sprout(home, "users", "add", REVIEWER, stdin=f"{REVIEWER_PASSWORD}\n")
    sprout(home, "users", "add", ADMIN, "--admin", stdin=f"{ADMIN_PASSWORD}\n")


@contextmanager
def serve(home: Path, port: int | None = None, *, need_model: bool = True,
          env: dict[str, str] | None = None) -> Iterator[LiveApi]:
    """``uvicorn api.main:app`` on 127.0.0.1 for ``home``, ready before it is yielded: serving a model, or
    (``need_model=False``, e.g. an empty home) just answering. ``env``: more settings (SPROUT_*)."""
    require_marker("server", "the API under uvicorn")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = home.parent / f"uvicorn-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=sprout_env(home, **(env or {})), cwd=home.parent)
    try:
        wait_ready(url, proc, log_path, path="/readyz" if need_model else "/healthz")
        yield LiveApi(url=url, home=home)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, path: str = "/readyz") -> None:
    try:
        wait_until_ready(http_ok(f"{url}{path}"), what=f"the API at {url}", timeout=START_TIMEOUT_S, proc=proc,
                         log=log_path, interval=0.5)
    except ServerStartError as exc:
        pytest.fail(str(exc))
