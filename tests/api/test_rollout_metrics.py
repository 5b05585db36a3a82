"""The rollout gauges on the real API (uvicorn, an embedded home of the 6-label scenes set): version 1 the champion,
version 2 the challenger in shadow. /metrics shows the open rollout, its live agreement, reviewed pairs and each
model's live accuracy as GET /rollouts computes them, and the decision once an admin aborts it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from model.data.importer import find_labeled_files
from tests.utils.datasets import write_tree
from tests.utils.live_api import LiveApi, add_reviewer, serve, sprout
from tests.utils.markers import needs
from tests.utils.paths import SCENES

pytestmark = pytest.mark.slow  # two versions are trained first
TRAINED = 20  # photos per label the versions train on; the ones after these were never seen
ENV = {"SPROUT_MODEL_POLL_SECONDS": "0.5", "SPROUT_PREDICTIONS_PER_MINUTE": "100000",
       "SPROUT_ROLLOUT_METRICS_SECONDS": "0.5"}


def scenes() -> dict[str, list[Path]]:
    by_label: dict[str, list[Path]] = {}
    for label, path in find_labeled_files(SCENES):
        by_label.setdefault(label, []).append(path)
    assert len(by_label) == 6, f"the scenes set must have 6 labels at {SCENES}"
    return by_label


@pytest.fixture(scope="module")
@needs("server")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 the champion; version 2, trained with SPROUT_ROLLOUT=shadow, the challenger of an open rollout."""
    root = tmp_path_factory.mktemp("rollout-metrics")
    home = root / "home"
    add_reviewer(home)
    tree = write_tree([(label, p) for label, paths in scenes().items() for p in paths[:TRAINED]], root / "tree")
    sprout(home, "import", str(tree))
    assert sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")["version"] == "1"
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env={"SPROUT_ROLLOUT": "shadow"})
    assert trained["gate"]["passed"], trained
    return home


def eventually(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the rollout gauges did not catch up"
        time.sleep(0.3)


def series(api: LiveApi, name: str) -> dict[str, float]:
    """Every sample of ``name`` in /metrics: its label part ('' without labels) -> value."""
    out = {}
    for line in httpx.get(f"{api.url}/metrics", timeout=30).text.splitlines():
        if line.startswith((f"{name}{{", f"{name} ")):
            key, value = line.rsplit(" ", 1)
            out[key.removeprefix(name)] = float(value)
    return out


def test_metrics_show_the_open_rollout_its_live_evidence_and_the_decision(home: Path) -> None:
    unseen = [(label, path.read_bytes()) for label, paths in scenes().items() for path in paths[TRAINED:TRAINED + 2]]
    with serve(home, env=ENV) as api:
        eventually(lambda: api.metric("sprout_rollout_open") == 1)
        assert series(api, "sprout_rollout_info") == {
            '{challenger="2",champion="1",mode="shadow"}': 1.0}
        assert api.metric("sprout_rollout_reviewed_pairs") == 0
        assert series(api, "sprout_rollout_live_accuracy") == {}  # no reviewed pair yet: no figure, never NaN
        with httpx.Client(timeout=30) as client:
            for _, data in unseen:
                resp = client.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")})
                assert resp.status_code == 200, resp.text
        eventually(lambda: api.metric("sprout_rollout_observations") == len(unseen))
        eventually(lambda: api.get("/rollouts")["rollouts"][0]["evidence"]["shadowed"] == len(unseen))
        evidence = api.get("/rollouts")["rollouts"][0]["evidence"]
        assert api.metric("sprout_rollout_agreement") == pytest.approx(evidence["agreement"])
        assert api.metric("sprout_rollout_challenger_error_rate") == 0
        assert set(series(api, "sprout_rollout_p99_seconds")) == {'{model="champion"}', '{model="challenger"}'}

        # reviewers label three of them, one of each of three labels: three reviewed pairs
        for label, data in unseen[::4]:
            sample = api.submit(data, label=label, headers=api.headers())
            resp = httpx.post(f"{api.url}/admin/samples/{sample['id']}/review",
                              json={"action": "approve", "label": label}, headers=api.headers(), timeout=30)
            assert resp.status_code == 200, resp.text
        eventually(lambda: api.metric("sprout_rollout_reviewed_pairs") == 3)
        evidence = sprout(home, "rollout", "status")["rollouts"][0]["evidence"]
        accuracy = series(api, "sprout_rollout_live_accuracy")
        assert accuracy == pytest.approx({'{model="champion"}': evidence["champion_accuracy"],
                                          '{model="challenger"}': evidence["challenger_accuracy"]})

        aborted = httpx.post(f"{api.url}/admin/rollouts/current/abort", json={"reason": "metrics test"},
                             headers=api.headers(admin=True), timeout=30)
        assert aborted.status_code == 200, aborted.text
        eventually(lambda: api.metric("sprout_rollout_open") == 0)
        decisions = series(api, "sprout_rollout_decisions")
        assert decisions == {'{decided_by_rule="true",outcome="promoted"}': 0,
                             '{decided_by_rule="false",outcome="promoted"}': 0,
                             '{decided_by_rule="true",outcome="aborted"}': 0,
                             '{decided_by_rule="false",outcome="aborted"}': 1}, decisions  # the admin's abort
        assert series(api, "sprout_rollout_info") == {} and series(api, "sprout_rollout_live_accuracy") == {}
