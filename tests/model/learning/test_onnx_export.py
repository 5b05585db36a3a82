"""model.learning.onnx_export: the fused ONNX graph (cached backbone + Gemm/Softmax head) and its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.core.settings import Settings
from model.data.images import PreprocessSpec, load_and_preprocess
from model.learning import onnx_export as export
from model.learning.backbones import LoadedBackbone, load_backbone
from model.learning.onnx_export import build_classifier
from model.serving.contract import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME
from model.serving.onnx_graph import read_head
from tests.utils.images import dataset_images

LABELS = ["dandelion", "grass", "other"]


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> LoadedBackbone:
    return load_backbone("efficientnet_lite0", Settings(home=tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def head() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.normal(0, 0.05, (len(LABELS), 1280)).astype(np.float32),
            rng.normal(0, 0.1, len(LABELS)).astype(np.float32))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of backbone graphs of this module's own (the export happens here, once)."""
    return tmp_path_factory.mktemp("graphs")


@pytest.fixture(scope="module")
def fused(lite0: LoadedBackbone, head: tuple[np.ndarray, np.ndarray], cache_dir: Path) -> onnx.ModelProto:
    weight, bias = head
    return build_classifier(lite0, weight=weight, bias=bias, labels=LABELS, graphs_dir=cache_dir,
                            metadata={"sprout.run_id": "run-123"})


@pytest.fixture(scope="module")
def session(fused: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(fused.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def real_batch(lite0: LoadedBackbone) -> np.ndarray:
    """Preprocessed dataset photos: 3 dandelions and 3 grass."""
    files = dataset_images("dandelion", 3) + dataset_images("grass", 3)
    return np.stack([load_and_preprocess(f.read_bytes(), lite0.spec) for f in files])


def _torch_proba(backbone: LoadedBackbone, head: tuple[np.ndarray, np.ndarray], batch: np.ndarray) -> np.ndarray:
    weight, bias = (torch.from_numpy(a) for a in head)
    with torch.no_grad():
        return torch.softmax(backbone.module(torch.from_numpy(batch)) @ weight.T + bias, dim=1).numpy()


def test_fused_graph_matches_torch_on_real_images(lite0: LoadedBackbone, head: tuple[np.ndarray, np.ndarray],
                                                  session: ort.InferenceSession, real_batch: np.ndarray) -> None:
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: real_batch})
    expected = _torch_proba(lite0, head, real_batch)
    assert got.shape == (len(real_batch), len(LABELS))
    assert np.abs(got - expected).max() <= 1e-4
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert expected.max() < 0.99  # the random head is not saturated, so the comparison means something


@pytest.mark.parametrize("n", [1, 5])
def test_dynamic_batch(session: ort.InferenceSession, real_batch: np.ndarray, n: int) -> None:
    (alone,) = session.run([OUTPUT_NAME], {INPUT_NAME: real_batch[:1]})
    (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: real_batch[:n]})
    assert got.shape == (n, len(LABELS))
    np.testing.assert_allclose(got[0], alone[0], atol=1e-5)


def test_input_and_output_names(session: ort.InferenceSession) -> None:
    (inp,) = session.get_inputs()
    out, features = session.get_outputs()
    assert inp.name == INPUT_NAME == "pixels"
    assert out.name == OUTPUT_NAME == "probabilities"
    assert features.name == FEATURES_NAME == "features"  # the embedding, in the same pass
    assert inp.shape[1:] == [3, 224, 224] and not isinstance(inp.shape[0], int)
    assert out.shape[1] == len(LABELS) and not isinstance(out.shape[0], int)
    assert features.shape[1] == 1280 and not isinstance(features.shape[0], int)


def test_metadata(fused: onnx.ModelProto, session: ort.InferenceSession, lite0: LoadedBackbone) -> None:
    meta = {p.key: p.value for p in fused.metadata_props}
    assert json.loads(meta["sprout.labels"]) == LABELS
    spec = json.loads(meta["sprout.preprocess"])
    assert spec["input_size"] == 224
    assert spec["mean"] == [0.5, 0.5, 0.5] and spec["std"] == [0.5, 0.5, 0.5]
    assert PreprocessSpec.from_json(meta["sprout.preprocess"]) == lite0.spec
    assert meta["sprout.input_size"] == "224"
    assert meta["sprout.backbone"] == "efficientnet_lite0"
    assert meta["sprout.embedding_dim"] == "1280"
    assert meta["sprout.run_id"] == "run-123"
    # ONNX Runtime exposes the same metadata (the Predictor reads it from there).
    assert dict(session.get_modelmeta().custom_metadata_map) == meta


def test_backbone_graph_is_cached(lite0: LoadedBackbone, fused: onnx.ModelProto, cache_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (cached,) = cache_dir.glob("*.onnx")
    assert cached.name.startswith("efficientnet_lite0-")
    mtime = cached.stat().st_mtime_ns

    def no_export(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the backbone graph was exported again")

    monkeypatch.setattr(export, "export_backbone", no_export)
    again = build_classifier(lite0, weight=np.zeros((2, 1280), np.float32), bias=np.array([0.0, 1.0], np.float32),
                             labels=["x", "y"], graphs_dir=cache_dir)
    assert [p.name for p in cache_dir.iterdir()] == [cached.name]
    assert cached.stat().st_mtime_ns == mtime
    assert {p.key: p.value for p in again.metadata_props}["sprout.labels"] == '["x", "y"]'
    # Same backbone nodes as the first build; only the head differs.
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in fused.graph.node]


def test_read_head_round_trip(fused: onnx.ModelProto, head: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(fused, str(path))
    meta, weight, bias = read_head(path)
    np.testing.assert_array_equal(weight, head[0])
    np.testing.assert_array_equal(bias, head[1])
    assert weight.dtype == np.float32 and bias.dtype == np.float32
    assert json.loads(meta["sprout.labels"]) == LABELS
    assert meta["sprout.backbone"] == "efficientnet_lite0"


def test_training_embeds_on_the_cpu_with_onnx_runtime_as_torch_would(lite0: LoadedBackbone, cache_dir: Path) -> None:
    """On a CPU, training embeds through the exported backbone graph (ONNX Runtime), equal to torch's."""
    from model.learning.embeddings import batch_embedder, embed_batch

    batch = np.stack([load_and_preprocess(p.read_bytes(), lite0.spec) for p in dataset_images("grass", 4)])
    assert lite0.device == "cpu"
    onnx_runtime = batch_embedder(lite0, cache_dir)(batch)
    assert onnx_runtime.dtype == np.float32 and onnx_runtime.shape == (4, 1280)
    assert np.allclose(onnx_runtime, embed_batch(lite0, batch), atol=1e-4)
    assert batch_embedder(lite0, None)(batch).shape == (4, 1280)  # no cache directory: torch
