"""``api.v2.encoding`` without a server: a response decodes with Triton's own client."""

from __future__ import annotations

import numpy as np
import tritonclient.http as triton

from api.v2.encoding import encode_response
from api.v2.protocol import Inference, InferRequest


def test_a_response_decodes_with_tritonclient_both_ways() -> None:
    request = InferRequest(images=[b"a", b"b"], outputs=[("probabilities", True), ("label", False),
                                                         ("abstained", True), ("unfamiliar", False)], id="x")
    proba = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    inference = Inference(proba, [_Result("grass", unfamiliar=True), _Result("dandelion", abstained=True)])  # type: ignore[list-item]
    body, length = encode_response(request, inference, model_name="m", model_version="3")
    assert length is not None
    result = triton.InferResult.from_response_body(body, header_length=int(length))
    np.testing.assert_array_equal(result.as_numpy("probabilities"), proba)
    assert result.as_numpy("label").tolist() == ["grass", "dandelion"]
    assert result.as_numpy("abstained").tolist() == [False, True]  # binary: one byte per image
    assert result.as_numpy("unfamiliar").tolist() == [True, False]
    assert result.get_response()["model_version"] == "3" and result.get_response()["id"] == "x"


class _Result:
    def __init__(self, label: str, *, abstained: bool = False, unfamiliar: bool = False) -> None:
        self.label, self.abstained, self.unfamiliar = label, abstained, unfamiliar
