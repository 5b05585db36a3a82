"""The API verifies what it serves: a version Sprout did not train, or whose artifact changed, is refused."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
from fastapi.testclient import TestClient
from onnx import numpy_helper

from db.models import RunStatus, TrainingRun
from model.core.errors import ArtifactRejectedError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning.promotion import train
from model.serving.contract import HEAD_BIAS, HEAD_WEIGHT
from tests.api.conftest import register_version
from tests.utils.datasets import dataset_tree
from tests.utils.images import dataset_images
from tests.utils.services import migrated_services


def evil_twin(path: Path) -> onnx.ModelProto:
    """The served graph with its head replaced: it says 'grass' to everything (what a takeover would register)."""
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name in (HEAD_WEIGHT, HEAD_BIAS):
            arr = numpy_helper.to_array(init)
            forced = np.zeros_like(arr)
            if init.name == HEAD_BIAS:
                forced[-1] = 50.0
            init.CopyFrom(numpy_helper.from_array(forced, init.name))
    return model


def served_after_polls(client: TestClient, seconds: float = 3.0) -> str | None:
    time.sleep(seconds)  # the watcher polls every 0.5 s in these tests
    photo = dataset_images("dandelion", 3)[2].read_bytes()
    return client.post("/predict", files={"file": ("d.jpg", photo, "image/jpeg")}).json().get("model_version")


def rejections(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("sprout_model_artifact_rejections_total "):
            return float(line.split()[-1])
    return 0.0


def test_a_version_registered_behind_sprouts_back_is_not_served(client: TestClient, trained_home: Path) -> None:
    svc = migrated_services(Settings(home=trained_home))
    before = client.get("/models").json()["serving"]
    start = rejections(client)
    try:
        _, path = svc.registry.model_file(before)
        rogue = register_version(svc, evil_twin(path), recorded=False)
        svc.registry.set_champion(rogue)  # the takeover: champion → the attacker's version
        assert served_after_polls(client) == before
        assert rejections(client) == start + 1
        # a version Sprout recorded, but whose artifact is not the one it recorded
        swapped = register_version(svc, evil_twin(path), digest="0" * 64)
        svc.registry.set_champion(swapped)
        assert served_after_polls(client) == before
        assert rejections(client) == start + 2
    finally:
        svc.registry.set_champion(before)
        svc.close()


def test_a_champion_sprout_did_not_train_is_no_baseline_for_the_gate(tmp_path: Path) -> None:
    """Retraining against a rogue champion would gate candidates on the attacker's model: the run fails, saying why."""
    tree = dataset_tree(tmp_path, 12)
    svc = migrated_services(Settings(_env_file=None, home=tmp_path / "home", gate_min_accuracy=0.5))  # type: ignore[call-arg]
    try:
        with svc.session() as session:
            import_directory(session, svc.store, tree)
        assert train(svc, force=True).promoted
        _, path = svc.registry.model_file()
        svc.registry.set_champion(register_version(svc, evil_twin(path), recorded=False))
        try:
            train(svc, force=True)
            raise AssertionError("a retrain gated its candidate on a version Sprout did not train")
        except ArtifactRejectedError as exc:
            assert "not registered by a Sprout training run" in str(exc)
        with svc.session() as session:
            last = session.query(TrainingRun).order_by(TrainingRun.id.desc()).first()
            assert last is not None and last.status == RunStatus.FAILED and "not registered" in (last.error or "")
    finally:
        svc.close()


def test_alert_rule_watches_the_rejections() -> None:
    rules = (Path(__file__).parents[2] / "monitoring" / "rules" / "sprout.rules.yml").read_text()
    assert "sprout_model_artifact_rejections_total" in rules
