"""model.serving.guards and the graph's ``unfamiliarity`` output: abstained and unfamiliar beside the label, from
the rules and centroids a model version carries; a model without them answers both False."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from model.data.images import PreprocessSpec
from model.serving.contract import FEATURES_NAME, INPUT_NAME, META_ABSTAIN, META_UNFAMILIAR, OPSET
from model.serving.guards import AbstainRule, Guards, UnfamiliarRule
from model.serving.onnx_graph import fuse_head
from model.serving.predictor import Predictor

LABELS = ["red", "green", "blue"]
SPEC = PreprocessSpec(input_size=8, resize=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def pooling_backbone() -> onnx.ModelProto:
    """A backbone whose embedding is the image's mean colour (3 dims): pixels → GlobalAveragePool → features."""
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", [INPUT_NAME], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], [FEATURES_NAME], axis=1)],
        "pool", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info(FEATURES_NAME, TensorProto.FLOAT, ["batch", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def png(rgb: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


GUARDS = Guards(abstain=AbstainRule(target=0.95, thresholds={"red": 0.6, "green": None, "blue": 0.0}, coverage=0.7,
                                    precision=0.96),
                unfamiliar=UnfamiliarRule(threshold=0.05, reference_size=3, in_domain_rate=0.03))


def classifier(guards: Guards | None, *, centroids: bool) -> Predictor:
    """Mean colour → a head that picks the strongest channel; centroids: the three pure colours."""
    model = fuse_head(pooling_backbone(), weight=np.eye(3, dtype=np.float32) * 8, bias=np.zeros(3, np.float32),
                      labels=LABELS, spec=SPEC, metadata=guards.metadata() if guards else None,
                      reference=np.eye(3, dtype=np.float32) if centroids else None)
    return Predictor.load(model.SerializeToString(), version="1", threads=1)


def test_the_rules_travel_in_the_metadata() -> None:
    meta = GUARDS.metadata()
    assert set(meta) == {META_ABSTAIN, META_UNFAMILIAR}
    assert Guards.from_metadata(meta) == GUARDS
    assert Guards.from_dict(GUARDS.to_dict()) == GUARDS
    assert Guards.from_metadata({}) == Guards()


def test_the_graph_measures_the_cosine_distance_to_the_nearest_centroid() -> None:
    predictor = classifier(GUARDS, centroids=True)
    colours = [(200, 10, 10), (10, 200, 10), (120, 120, 120), (200, 200, 0)]
    outputs = predictor.run(np.stack([predictor.preprocess(png(c)) for c in colours]))
    assert outputs.unfamiliarity is not None and outputs.features is not None
    unit = outputs.features / np.linalg.norm(outputs.features, axis=1, keepdims=True)
    assert outputs.unfamiliarity == pytest.approx(1.0 - unit.max(axis=1), abs=1e-5)  # centroids: the unit axes
    assert outputs.unfamiliarity[2] == pytest.approx(1 - 1 / np.sqrt(3), abs=1e-3)  # grey: as far from all three


def test_predictions_say_abstained_and_unfamiliar_and_keep_the_argmax() -> None:
    predictor = classifier(GUARDS, centroids=True)
    red, green, grey, yellow = (predictor.predict_bytes(png(c))
                                for c in ((230, 5, 5), (5, 230, 5), (120, 120, 124), (200, 190, 0)))
    assert red.label == "red" and not red.abstained and not red.unfamiliar
    assert green.label == "green" and green.abstained and not green.unfamiliar  # "green" never met the target
    assert grey.label == "blue" and not grey.abstained and grey.unfamiliar  # blue's threshold 0 keeps it
    assert yellow.label == "red" and yellow.abstained and yellow.unfamiliar  # red at about 0.54 < 0.6
    assert yellow.to_dict()["abstained"] is True and yellow.to_dict()["unfamiliar"] is True
    assert yellow.as_prediction().unfamiliar


def test_a_model_without_rules_or_centroids_never_abstains_nor_calls_anything_unfamiliar() -> None:
    predictor = classifier(None, centroids=False)
    assert predictor.guards == Guards()
    outputs = predictor.run(predictor.preprocess(png((120, 120, 124)))[None])
    assert outputs.unfamiliarity is None and outputs.features is not None
    for colour in ((230, 5, 5), (5, 230, 5), (120, 120, 124), (200, 190, 0)):
        result = predictor.predict_bytes(png(colour))
        assert not result.abstained and not result.unfamiliar
