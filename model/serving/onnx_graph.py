"""Sprout's fused ONNX graph: append a trained linear head to a backbone graph, and read it back.

Appending Gemm + Softmax nodes to a cached backbone graph means a retrain never pays for a torch export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model.data.images import PreprocessSpec
from model.serving.contract import (
    FEATURES_NAME,
    HEAD_BIAS,
    HEAD_WEIGHT,
    META_EMBEDDING_DIM,
    META_INPUT_SIZE,
    META_LABELS,
    META_PREPROCESS,
    OUTPUT_NAME,
)


def fuse_head(
    backbone_graph: onnx.ModelProto,
    *,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    spec: PreprocessSpec,
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """Append ``softmax(features @ weight.T + bias)`` to the backbone graph; store labels and spec.

    The graph has two outputs: the probabilities and the backbone's ``features`` (the embedding), so a
    prediction gives the embedding in the same pass.
    """
    model = onnx.ModelProto()
    model.CopyFrom(backbone_graph)
    graph = model.graph
    n_classes, dim = weight.shape
    graph.initializer.extend([
        numpy_helper.from_array(weight.astype(np.float32), HEAD_WEIGHT),
        numpy_helper.from_array(bias.astype(np.float32), HEAD_BIAS),
    ])
    graph.node.extend([
        helper.make_node("Gemm", [FEATURES_NAME, HEAD_WEIGHT, HEAD_BIAS], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=1),
    ])
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_classes]),
        helper.make_tensor_value_info(FEATURES_NAME, TensorProto.FLOAT, ["batch", dim]),
    ])
    props = {
        META_LABELS: json.dumps(labels),
        META_PREPROCESS: spec.to_json(),
        META_INPUT_SIZE: str(spec.input_size),
        META_EMBEDDING_DIM: str(dim),
        **(metadata or {}),
    }
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    model.producer_name = "sprout"
    onnx.checker.check_model(model)
    return model


def read_head(path: Path) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """Metadata, head weight and head bias of an exported Sprout classifier."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer if t.name in (HEAD_WEIGHT, HEAD_BIAS)}
    meta = {p.key: p.value for p in model.metadata_props}
    return meta, numpy_helper.to_array(inits[HEAD_WEIGHT]), numpy_helper.to_array(inits[HEAD_BIAS])
