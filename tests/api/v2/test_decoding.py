"""``api.v2.decoding`` without a server: binary and JSON requests, and what it refuses."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from api.v2.decoding import parse_request
from api.v2.protocol import ProtocolError


def test_parse_binary_images_and_json_pixels() -> None:
    raw = b"".join(struct.pack("<I", len(x)) + x for x in (b"one", b"", b"three"))
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3],
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True},
                         "outputs": [{"name": "label"}, {"name": "probabilities",
                                                         "parameters": {"binary_data": False}}]}).encode()
    parsed = parse_request(header + raw, str(len(header)), input_size=4)
    assert parsed.images == [b"one", b"", b"three"]
    assert parsed.outputs == [("label", True), ("probabilities", False)]
    nested = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    body = json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 4, 4],
                                   "data": nested.tolist()}]}).encode()
    parsed = parse_request(body, None, input_size=4)
    np.testing.assert_array_equal(parsed.pixels, nested)
    assert parsed.outputs == [("probabilities", False), ("label", False), ("abstained", False),
                              ("unfamiliar", False)]
    for bad in (float("nan"), True):
        body = json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3, 4, 4],
                                       "data": [bad] * 48}]}).encode()
        with pytest.raises(ProtocolError):
            parse_request(body, None, input_size=4)
    lying = struct.pack("<I", 100) + b"short"  # an element claiming more bytes than the tensor has
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(lying)}}]}).encode()
    with pytest.raises(ProtocolError, match="longer than its binary data"):
        parse_request(header + lying, str(len(header)), input_size=4)
