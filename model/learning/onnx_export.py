"""Export a trained model as Sprout's fused ONNX graph (backbone + linear head + softmax).

The backbone graph is exported from torch once per backbone and cached; each trained head is
appended by ``model.serving.onnx_graph.fuse_head``, so a retrain does not pay for a torch export.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from model.serving.contract import FEATURES_NAME, INPUT_NAME, META_BACKBONE, OPSET
from model.serving.onnx_graph import fuse_head

if TYPE_CHECKING:
    from model.learning.backbones import LoadedBackbone

log = logging.getLogger(__name__)

_lock = threading.Lock()


def export_backbone(backbone: LoadedBackbone, path: Path) -> None:
    """Export the frozen backbone (NCHW pixels → features) with a dynamic batch axis."""
    import copy

    import torch

    size = backbone.spec.input_size
    module = copy.deepcopy(backbone.module).to("cpu").eval()
    dummy = torch.zeros(2, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # a shared directory: own file
    with torch.no_grad():
        torch.onnx.export(
            module, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[FEATURES_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, FEATURES_NAME: {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    tmp.replace(path)  # atomic: another process sees no graph or a whole one


def cached_backbone_path(backbone: LoadedBackbone, graphs_dir: Path) -> Path:
    """Where the backbone's ONNX graph lies in ``graphs_dir`` (named by its weights' identity), exported there on
    first use (the only time this needs torch)."""
    path = backbone.onnx_path(graphs_dir)
    with _lock:
        if not path.exists():
            log.info("exporting backbone %s to ONNX (once)", backbone.name)
            export_backbone(backbone, path)
    return path


def cached_backbone_graph(backbone: LoadedBackbone, graphs_dir: Path) -> onnx.ModelProto:
    """The backbone's ONNX graph, exported on first use and reused from ``graphs_dir``."""
    return onnx.load(str(cached_backbone_path(backbone, graphs_dir)))


def build_classifier(
    backbone: LoadedBackbone,
    *,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    graphs_dir: Path,
    metadata: dict[str, str] | None = None,
    reference: np.ndarray | None = None,
) -> onnx.ModelProto:
    """The served artifact: one fused ONNX graph for this backbone and head (with ``reference``, the label
    centroids its ``unfamiliarity`` output measures the distance to)."""
    meta = {META_BACKBONE: backbone.name, **(metadata or {})}
    return fuse_head(cached_backbone_graph(backbone, graphs_dir), weight=weight, bias=bias, labels=labels,
                     spec=backbone.spec, metadata=meta, reference=reference)
