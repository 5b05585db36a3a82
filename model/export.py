"""ONNX export: one fused graph (backbone + linear head + softmax) with its metadata.

The backbone graph is exported from torch once per backbone and cached; each trained head is
appended as Gemm + Softmax nodes, so a retrain does not pay for a torch export.
Input ``pixels``: preprocessed float32 NCHW, dynamic batch. Output ``probabilities``: (N, classes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model.images import PreprocessSpec

if TYPE_CHECKING:
    from model.backbones import LoadedBackbone

log = logging.getLogger(__name__)

INPUT_NAME = "pixels"
FEATURES_NAME = "features"
OUTPUT_NAME = "probabilities"
OPSET = 17
_lock = threading.Lock()


def export_backbone(backbone: LoadedBackbone, path: Path) -> None:
    """Export the frozen backbone (NCHW pixels → features) with a dynamic batch axis."""
    import copy

    import torch

    size = backbone.spec.input_size
    module = copy.deepcopy(backbone.module).to("cpu").eval()
    dummy = torch.zeros(2, 3, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(
            module, (dummy,), str(tmp), input_names=[INPUT_NAME], output_names=[FEATURES_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, FEATURES_NAME: {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    tmp.replace(path)


def _state_fingerprint(backbone: LoadedBackbone) -> str:
    digest = hashlib.sha256()
    for name, tensor in backbone.module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes()[:4096])
    return digest.hexdigest()[:16]


def cached_backbone_graph(backbone: LoadedBackbone, cache_dir: Path) -> onnx.ModelProto:
    """The backbone's ONNX graph, exported on first use and reused from ``cache_dir``."""
    path = cache_dir / "backbones" / f"{backbone.name}-{_state_fingerprint(backbone)}.onnx"
    with _lock:
        if not path.exists():
            log.info("exporting backbone %s to ONNX (once)", backbone.name)
            export_backbone(backbone, path)
    return onnx.load(str(path))


def fuse_head(
    backbone_graph: onnx.ModelProto,
    *,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    spec: PreprocessSpec,
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """Append ``softmax(features @ weight.T + bias)`` to the backbone graph; store labels and spec."""
    model = onnx.ModelProto()
    model.CopyFrom(backbone_graph)
    graph = model.graph
    n_classes, dim = weight.shape
    graph.initializer.extend([
        numpy_helper.from_array(weight.astype(np.float32), "head_weight"),
        numpy_helper.from_array(bias.astype(np.float32), "head_bias"),
    ])
    graph.node.extend([
        helper.make_node("Gemm", [FEATURES_NAME, "head_weight", "head_bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_classes]))
    props = {
        "sprout.labels": json.dumps(labels),
        "sprout.preprocess": spec.to_json(),
        "sprout.input_size": str(spec.input_size),
        "sprout.embedding_dim": str(dim),
        **(metadata or {}),
    }
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    model.producer_name = "sprout"
    onnx.checker.check_model(model)
    return model


def build_classifier(
    backbone: LoadedBackbone,
    *,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    cache_dir: Path,
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """The served artifact: one fused ONNX graph for this backbone and head."""
    meta = {"sprout.backbone": backbone.name, **(metadata or {})}
    return fuse_head(cached_backbone_graph(backbone, cache_dir), weight=weight, bias=bias, labels=labels,
                     spec=backbone.spec, metadata=meta)


def read_head(path: Path) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """Metadata, head weight and head bias of an exported Sprout classifier."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer if t.name in ("head_weight", "head_bias")}
    meta = {p.key: p.value for p in model.metadata_props}
    return meta, numpy_helper.to_array(inits["head_weight"]), numpy_helper.to_array(inits["head_bias"])
