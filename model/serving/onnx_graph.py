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
    REFERENCE,
    UNFAMILIARITY_NAME,
)


def fuse_head(
    backbone_graph: onnx.ModelProto,
    *,
    weight: np.ndarray,
    bias: np.ndarray,
    labels: list[str],
    spec: PreprocessSpec,
    metadata: dict[str, str] | None = None,
    reference: np.ndarray | None = None,
) -> onnx.ModelProto:
    """Append ``softmax(features @ weight.T + bias)`` to the backbone graph; store labels and spec.

    The graph outputs the probabilities and the backbone's ``features`` (the embedding), so a prediction gives
    the embedding in the same pass; with ``reference`` (the label centroids of the training embeddings, one per
    row) also ``unfamiliarity``, each image's cosine distance to the nearest of them (``add_unfamiliarity``).
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
    if reference is not None:
        add_unfamiliarity(graph, reference)
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


def add_unfamiliarity(graph: onnx.GraphProto, reference: np.ndarray) -> None:
    """Add the output ``unfamiliarity``: ``1 - cos`` between each image's features and its nearest row of
    ``reference`` (the label centroids)."""
    rows = np.asarray(reference, dtype=np.float32)
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    graph.initializer.extend([
        numpy_helper.from_array(np.ascontiguousarray(rows.T), REFERENCE),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "familiar_eps"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "familiar_one"),
    ])
    graph.node.extend([
        helper.make_node("ReduceL2", [FEATURES_NAME], ["familiar_norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["familiar_norm", "familiar_eps"], ["familiar_norm_safe"]),
        helper.make_node("Div", [FEATURES_NAME, "familiar_norm_safe"], ["familiar_unit"]),
        helper.make_node("MatMul", ["familiar_unit", REFERENCE], ["familiar_cosine"]),
        helper.make_node("ReduceMax", ["familiar_cosine"], ["familiar_nearest"], axes=[1], keepdims=0),
        helper.make_node("Sub", ["familiar_one", "familiar_nearest"], [UNFAMILIARITY_NAME]),
    ])
    graph.output.append(helper.make_tensor_value_info(UNFAMILIARITY_NAME, TensorProto.FLOAT, ["batch"]))
