"""A v2 inference request from its body: the JSON header, and the binary tensors after it when
``Inference-Header-Content-Length`` says where the header ends. No web framework here: bytes in, ProtocolError out."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from typing import Any

import numpy as np

from api.v2.protocol import (
    DIGITS,
    HEADER_LENGTH,
    IMAGES,
    MAX_BATCH,
    OUTPUTS,
    PIXELS,
    UNSUPPORTED_PARAMETERS,
    InferRequest,
    ProtocolError,
)


def split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header (an object) and the binary data after it."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        if not DIGITS.fullmatch(header_length):
            raise ProtocolError(f"{HEADER_LENGTH} must be a decimal integer, not {header_length[:40]!r}.")
        length = int(header_length)
        if not 0 < length <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes.")
        json_part, binary = body[:length], body[length:]
    try:
        header = json.loads(json_part)
    except RecursionError:
        raise ProtocolError("The inference request's JSON is nested too deeply.") from None
    except (UnicodeDecodeError, ValueError):
        hint = "" if header_length is not None else f" (binary tensors need the {HEADER_LENGTH} header)"
        raise ProtocolError(f"The inference request is not valid JSON{hint}.") from None
    if not isinstance(header, dict):
        raise ProtocolError("The inference request must be a JSON object.")
    return header, binary


def _parameters(obj: dict[str, Any], what: str) -> dict[str, Any]:
    params = obj.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(f"The parameters of {what} must be an object.")
    for name in UNSUPPORTED_PARAMETERS:
        if name in params:
            raise ProtocolError(f"Parameter {name!r} ({what}) is not supported by this server.")
    return params


def _shape(spec: dict[str, Any]) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ProtocolError(f"Input {spec.get('name')!r} needs a shape: a list of non-negative integers.")
    return shape


def _batch(n: int, name: str) -> None:
    if not 1 <= n <= MAX_BATCH:
        raise ProtocolError(f"Input {name!r} must hold 1 to {MAX_BATCH} items per request, not {n}.")


def _bytes_elements(raw: bytes, count: int) -> list[bytes]:
    """BYTES in the binary form: ``count`` elements, each a little-endian uint32 length and its bytes."""
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise ProtocolError("The binary data of 'images' ends before its shape's element count.")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError("An element of 'images' is longer than its binary data.")
        items.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise ProtocolError("The binary data of 'images' holds more than its shape's element count.")
    return items


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _images(spec: dict[str, Any], raw: bytes | None) -> list[bytes]:
    if spec.get("datatype") != "BYTES":
        raise ProtocolError(f"Input 'images' must be BYTES (encoded images), not {spec.get('datatype')!r}.")
    shape = _shape(spec)
    if len(shape) != 1:
        raise ProtocolError(f"Input 'images' must have shape [N], not {shape}.")
    _batch(shape[0], IMAGES)
    if raw is not None:
        return _bytes_elements(raw, shape[0])
    items = _flatten(spec.get("data"))
    if len(items) != shape[0] or not all(isinstance(item, str) for item in items):
        raise ProtocolError(f"Input 'images' in JSON needs {shape[0]} strings (base64-encoded images).")
    try:
        return [base64.b64decode(item, validate=True) for item in items]
    except (binascii.Error, ValueError):
        raise ProtocolError("In JSON, each element of 'images' must be a base64-encoded image (JSON strings "
                            "cannot carry raw bytes; send binary data for raw bytes).") from None


def _pixels(spec: dict[str, Any], raw: bytes | None, input_size: int) -> np.ndarray:
    if spec.get("datatype") != "FP32":
        raise ProtocolError(f"Input 'pixels' must be FP32, not {spec.get('datatype')!r}.")
    shape = _shape(spec)
    expected = [3, input_size, input_size]
    if len(shape) != 4 or shape[1:] != expected:
        raise ProtocolError(f"Input 'pixels' must have shape [N, {', '.join(map(str, expected))}], not {shape}.")
    _batch(shape[0], PIXELS)
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * 4:
            raise ProtocolError(f"Input 'pixels' of shape {shape} needs {count * 4} bytes, not {len(raw)}.")
        array = np.frombuffer(raw, dtype="<f4")
    else:
        try:  # nested or flat; numbers only (strings, booleans, nulls and ragged lists are refused)
            array = np.asarray(spec.get("data"))
        except ValueError:
            array = np.asarray([])
        if array.dtype.kind not in "fiu" or array.size != count:
            raise ProtocolError(f"Input 'pixels' of shape {shape} needs {count} numbers.")
    with np.errstate(over="ignore"):  # JSON numbers beyond FP32's range (1e39) become infinite here
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ProtocolError("Input 'pixels' must hold finite FP32 numbers only.")
    return array.reshape(shape)


def _outputs(header: dict[str, Any]) -> list[tuple[str, bool]]:
    binary_default = _parameters(header, "the request").get("binary_data_output", False)
    wanted = header.get("outputs")
    if wanted is None:
        return [(name, bool(binary_default)) for name in OUTPUTS]
    if not isinstance(wanted, list) or not wanted:
        raise ProtocolError("'outputs' must be a non-empty list when given.")
    outputs: list[tuple[str, bool]] = []
    for out in wanted:
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUTS:
            raise ProtocolError(f"Unknown output {name!r}; the model has {', '.join(OUTPUTS)}.")
        if any(name == seen for seen, _ in outputs):
            raise ProtocolError(f"Output {name!r} is requested twice.")
        outputs.append((name, bool(_parameters(out, f"output {name!r}").get("binary_data", binary_default))))
    return outputs


def parse_request(body: bytes, header_length: str | None, *, input_size: int,
                  content_encoding: str | None = None) -> InferRequest:
    """An inference request from its body (and ``Inference-Header-Content-Length``); ProtocolError if bad."""
    if content_encoding not in (None, "identity"):
        raise ProtocolError(f"Content-Encoding {content_encoding[:20]!r} is not supported; send the body as is.")
    header, binary = split_body(body, header_length)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(f"Send exactly one input: {IMAGES!r} (BYTES, encoded images) or {PIXELS!r} "
                            "(FP32, preprocessed).")
    spec = inputs[0]
    size = _parameters(spec, f"input {spec.get('name')!r}").get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ProtocolError("'binary_data_size' must be a non-negative integer.")
    if size is not None and size != len(binary):
        raise ProtocolError(f"'binary_data_size' is {size}, but {len(binary)} bytes follow the JSON header.")
    if size is None and binary:
        raise ProtocolError("Binary data follows the JSON header, but no input declares 'binary_data_size'.")
    raw = binary if size is not None else None
    if size is None and "data" not in spec:
        raise ProtocolError(f"Input {spec.get('name')!r} has neither 'data' nor 'binary_data_size'.")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string.")
    outputs = _outputs(header)
    if spec.get("name") == IMAGES:
        return InferRequest(images=_images(spec, raw), outputs=outputs, id=request_id)
    if spec.get("name") == PIXELS:
        return InferRequest(pixels=_pixels(spec, raw, input_size), outputs=outputs, id=request_id)
    raise ProtocolError(f"Unknown input {spec.get('name')!r}; the model takes {IMAGES!r} or {PIXELS!r}.")
