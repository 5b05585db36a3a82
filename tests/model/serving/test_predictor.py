"""model.serving.predictor: serving from the fused ONNX file alone, with ONNX Runtime and without torch."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from model.core.settings import Settings
from model.learning.backbones import load_backbone
from model.learning.onnx_export import build_classifier, cached_backbone_graph
from model.serving.onnx_graph import fuse_head
from model.serving.predictor import PredictionResult, Predictor
from tests.utils.images import dataset_images, random_image_bytes
from tests.utils.paths import REPO_ROOT

LABELS = ["dandelion", "grass", "other"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(home=tmp_path_factory.mktemp("predictor"))


@pytest.fixture(scope="module")
def exported(settings: Settings) -> Path:
    """An exported lite0 classifier with a random (unsaturated) 3-label head."""
    backbone = load_backbone("efficientnet_lite0", settings)
    rng = np.random.default_rng(1)
    model = build_classifier(
        backbone, weight=rng.normal(0, 0.05, (len(LABELS), 1280)).astype(np.float32),
        bias=rng.normal(0, 0.1, len(LABELS)).astype(np.float32), labels=LABELS, graphs_dir=settings.backbone_graphs_dir,
    )
    path = settings.home / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def predictor(exported: Path) -> Predictor:
    return Predictor.load(exported, version="7", threads=1)


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    files = dataset_images("dandelion", 3) + dataset_images("grass", 2)
    return [f.read_bytes() for f in files]


def _check(result: PredictionResult) -> None:
    assert result.label in LABELS
    assert list(result.probabilities) == LABELS
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.confidence == max(result.probabilities.values())
    assert result.probabilities[result.label] == result.confidence


def test_predictor_reads_labels_and_spec_from_the_file(predictor: Predictor) -> None:
    assert predictor.labels == LABELS
    assert predictor.spec.input_size == 224
    assert predictor.spec.mean == (0.5, 0.5, 0.5)
    assert predictor.version == "7"
    assert predictor.metadata["sprout.backbone"] == "efficientnet_lite0"


def test_predict_bytes(predictor: Predictor, images: list[bytes]) -> None:
    result = predictor.predict_bytes(images[0])
    _check(result)
    assert result.model_version == "7"
    assert result.to_dict() == {"label": result.label, "confidence": result.confidence,
                                "probabilities": result.probabilities, "model_version": "7",
                                "abstained": False, "unfamiliar": False}  # a model without rules


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_predict_other_formats(predictor: Predictor, fmt: str) -> None:
    _check(predictor.predict_bytes(random_image_bytes(fmt, size=(80, 60), mode="RGBA" if fmt == "PNG" else "RGB")))


def test_predict_many_matches_predict_bytes(predictor: Predictor, images: list[bytes]) -> None:
    one_by_one = [predictor.predict_bytes(d) for d in images]
    batched = predictor.predict_many(images, batch_size=2)  # 2 + 2 + 1: crosses batch boundaries
    assert len(batched) == len(images)
    for a, b in zip(one_by_one, batched, strict=True):
        _check(b)
        assert a.label == b.label
        for label in LABELS:
            assert b.probabilities[label] == pytest.approx(a.probabilities[label], abs=1e-5)
    assert predictor.predict_many([]) == []


def test_load_from_bytes(exported: Path, predictor: Predictor, images: list[bytes]) -> None:
    from_bytes = Predictor.load(exported.read_bytes(), threads=1)
    a, b = predictor.predict_bytes(images[1]), from_bytes.predict_bytes(images[1])
    assert b.model_version is None
    assert a.label == b.label and a.confidence == pytest.approx(b.confidence, abs=1e-6)


class CountingSession:
    """An ONNX Runtime session that records how many runs are in progress at once."""

    def __init__(self, session: Any) -> None:
        self.session, self.lock, self.now, self.most = session, threading.Lock(), 0, 0

    def run(self, *args: Any) -> Any:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            time.sleep(0.01)  # widen the window in which runs could overlap
            return self.session.run(*args)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.parametrize("slots", [None, 2])
def test_slots_bound_the_runs_in_progress_over_all_threads(exported: Path, images: list[bytes],
                                                           slots: int | None) -> None:
    """The API's upload threads (up to 100) all predict; only ``slots`` runs may be in progress at once."""
    loaded = Predictor.load(exported, threads=1, slots=threading.BoundedSemaphore(slots) if slots else None)
    counting = CountingSession(loaded.session)
    predictor = dataclasses.replace(loaded, session=counting)
    work = [lambda d=d: predictor.prediction_of(predictor.decode(d)) for d in images * 4]
    work += [lambda d=d: predictor.predict_bytes(d) for d in images * 4]
    with ThreadPoolExecutor(len(work)) as pool:
        results = list(pool.map(lambda job: job(), work))
    assert len(results) == len(work)
    if slots is None:
        assert counting.most > 2  # the threads really overlap: the bound below is the slots' doing
    else:
        assert counting.most == slots


def test_head_decides_the_label(settings: Settings, exported: Path) -> None:
    """With a zero weight the bias alone decides: softmax([0, 5, 0]) → "grass"."""
    assert exported.exists()  # the backbone graph is in the cache by now
    backbone = load_backbone("efficientnet_lite0", settings)
    graph = cached_backbone_graph(backbone, settings.backbone_graphs_dir)
    model = fuse_head(graph, weight=np.zeros((3, 1280), np.float32), bias=np.array([0.0, 5.0, 0.0], np.float32),
                      labels=LABELS, spec=backbone.spec)
    result = Predictor.load(model.SerializeToString(), threads=1).predict_bytes(random_image_bytes("JPEG"))
    assert result.label == "grass"
    assert result.confidence == pytest.approx(np.exp(5) / (np.exp(5) + 2), abs=1e-5)


SERVING_SCRIPT = textwrap.dedent("""
    import json
    import sys
    from pathlib import Path

    import model.serving.predictor
    import model.serving.registry  # noqa: F401  (what the API imports)

    predictor = model.serving.predictor.Predictor.load(Path(sys.argv[1]), threads=1)
    result = predictor.predict_bytes(Path(sys.argv[2]).read_bytes())
    torch_modules = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
    sys.stdout.write(json.dumps({"result": result.to_dict(), "torch": torch_modules}))
""")


def test_serving_never_imports_torch(exported: Path, predictor: Predictor, images: list[bytes],
                                     tmp_path: Path) -> None:
    image = tmp_path / "image.jpg"
    image.write_bytes(images[0])
    proc = subprocess.run([sys.executable, "-c", SERVING_SCRIPT, str(exported), str(image)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["torch"] == []
    expected = predictor.predict_bytes(images[0])
    assert out["result"]["label"] == expected.label
    assert out["result"]["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
