"""A challenger whose artifact fails on a class of inputs (bright images), on the real API: in shadow the clients never
see its failures (the champion answers every request), the judge aborts it at its first interval once enough
requests show the error rate, the champion stays, and a webhook receiver gets the signed ``rollout.aborted``; in
canary, a client routed to it is answered by the champion.

The faulty artifact is made the way a broken training step would: version 2's fused graph gets a Reshape that fails
when the image's mean intensity is above the live images' median, and the run's recorded sha256 is that file's (so
the API verifies and loads it, as it would a real Sprout artifact).
"""

from __future__ import annotations

import base64
import hashlib
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from db.models import TrainingRun
from model.core.settings import Settings
from model.serving.contract import OUTPUT_NAME
from model.serving.predictor import Predictor
from tests.utils.images import dataset_images
from tests.utils.live_api import ADMIN, one_version_home, serve, sprout
from tests.utils.markers import needs
from tests.utils.services import TEST_SPLIT_KEY, migrated_services
from tests.utils.webhook_receiver import SECRET, webhook_receiver

pytestmark = pytest.mark.slow
TRAINED, LIVE = 40, 30  # one_version_home's photos per label; live requests (never trained on)
FAST = {"SPROUT_MODEL_POLL_SECONDS": "0.5", "SPROUT_PREDICTIONS_PER_MINUTE": "100000"}


def live_images() -> list[bytes]:
    return [dataset_images(label, TRAINED + i + 1)[-1].read_bytes() for i in range(LIVE // 2)
            for label in ("dandelion", "grass")]


def break_on_bright_images(path: Path, threshold: float) -> bytes:
    """The graph at ``path`` with its probabilities reshaped to [7, -1] — an error at run time — for any input
    whose mean is above ``threshold``; unchanged otherwise."""
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    image = graph.input[0].name
    producer = next(n for n in graph.node if OUTPUT_NAME in n.output)
    producer.output[list(producer.output).index(OUTPUT_NAME)] = "probabilities_raw"
    graph.node.extend([
        helper.make_node("ReduceMean", [image], ["fault_mean"], keepdims=0),
        helper.make_node("Constant", [], ["fault_threshold"],
                         value=helper.make_tensor("t", TensorProto.FLOAT, [], [threshold])),
        helper.make_node("Greater", ["fault_mean", "fault_threshold"], ["fault_bright"]),
        helper.make_node("Constant", [], ["fault_bad_shape"], value=helper.make_tensor("b", TensorProto.INT64, [2],
                                                                                          [7, -1])),
        helper.make_node("Shape", ["probabilities_raw"], ["fault_good_shape"]),
        helper.make_node("Where", ["fault_bright", "fault_bad_shape", "fault_good_shape"], ["fault_shape"]),
        helper.make_node("Reshape", ["probabilities_raw", "fault_shape"], [OUTPUT_NAME]),
    ])
    onnx.checker.check_model(graph_model)
    return graph_model.SerializeToString()


@pytest.fixture(scope="module")
@needs("server")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 the champion; version 2 the challenger in shadow, its artifact failing on the brighter half."""
    home = one_version_home(tmp_path_factory.mktemp("faulty"))
    trained = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", env={"SPROUT_ROLLOUT": "shadow"})
    assert trained["version"] == "2" and not trained["promoted"], trained
    svc = migrated_services(Settings(home=home, split_key=TEST_SPLIT_KEY))
    _, cached = svc.registry.model_file("2")
    predictor = Predictor.load(cached, version="2")
    threshold = statistics.median(float(np.mean(predictor.preprocess(data))) for data in live_images())
    faulty = break_on_bright_images(cached, threshold)
    original = cached.read_bytes()
    stored = [p for p in home.rglob("*.onnx") if "cache" not in p.parts and p.read_bytes() == original]
    assert stored, f"version 2's artifact not found under {home}"  # where MLflow logged it
    for path in [*stored, cached]:
        path.write_bytes(faulty)
    for marker in cached.parent.glob("*.verified"):
        marker.unlink()
    with svc.session() as session:  # as if training had logged this file: its digest is the one on record
        run = session.query(TrainingRun).filter_by(registered_version="2").one()
        run.artifact_sha256 = hashlib.sha256(faulty).hexdigest()
        session.commit()
    return home


def predict(client: httpx.Client, url: str, data: bytes, key: str | None = None) -> dict[str, Any]:
    resp = client.post(f"{url}/predict", files={"file": ("x.jpg", data, "image/jpeg")},
                       headers={"X-Sprout-Client": key} if key else {})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_challenger_failing_on_bright_images_is_aborted_at_the_first_judgement_and_announced(home: Path) -> None:
    hooks_env: dict[str, str] = {}
    with webhook_receiver() as hooks:
        hooks_env = {"SPROUT_WEBHOOK_URL": hooks.url, "SPROUT_WEBHOOK_SECRET": SECRET}
        with serve(home, env=FAST | hooks_env) as api:
            assert api.get("/rollouts")["challenger"] == "2"
            with httpx.Client(timeout=30) as client:
                answers = [predict(client, api.url, data) for data in live_images()]
            assert {a["model_version"] for a in answers} == {"1"}  # no client saw the challenger fail
            deadline = time.monotonic() + 60
            while (evidence := sprout(home, "rollout", "status")["rollouts"][0]["evidence"])["shadowed"] < LIVE:
                assert time.monotonic() < deadline, evidence
                time.sleep(1)
            assert LIVE // 4 <= evidence["challenger_errors"] <= 3 * LIVE // 4, evidence  # the brighter half
            assert api.metric("sprout_rollout_scored_total", mode="shadow", outcome="error") == \
                evidence["challenger_errors"]

            judged = sprout(home, "rollout", "judge", env=hooks_env)  # what the sprout_rollout DAG runs
            assert (judged["outcome"], judged["decided_by"]) == ("aborted", "rule"), judged
            assert "the challenger failed on" in judged["reason"]
            deadline = time.monotonic() + 10
            while api.get("/models")["challenger"] is not None:  # every process drops it within its poll
                assert time.monotonic() < deadline
                time.sleep(0.5)
            assert api.get("/models")["champion"] == "1"
        [event] = hooks.events()  # signed with the secret, or this raises
        assert event["type"] == "rollout.aborted" and event["data"]["challenger"] == "2"
        assert event["data"]["decided_by"] == "rule" and "failed on" in event["data"]["reason"]


def test_in_canary_a_client_routed_to_a_failing_challenger_is_answered_by_the_champion(home: Path) -> None:
    sprout(home, "rollout", "start", "2", "--by", ADMIN, "--mode", "canary")
    with serve(home, env=FAST | {"SPROUT_CANARY_SHARE": "1"}) as api, httpx.Client(timeout=30) as client:
        versions = [predict(client, api.url, data, key=f"c{i}")["model_version"] for i, data in
                    enumerate(live_images())]
        assert set(versions) == {"1", "2"}, versions  # the dark half answered by v2, the bright half by v1
        assert api.metric("sprout_canary_answers_total", model="challenger") == versions.count("2")
        bright = next(data for data, version in zip(live_images(), versions, strict=True) if version == "1")
        body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                            "data": [base64.b64encode(bright).decode()]}]}
        answered = client.post(f"{api.url}/v2/models/sprout-classifier/infer", json=body,
                               headers={"X-Sprout-Client": "a-v2-client"})
        assert answered.status_code == 200 and answered.json()["model_version"] == "1", answered.text  # /v2 too
