"""The Open Inference Protocol (KServe v2 REST) with Triton's binary tensor data extension, for the champion.

No web framework here: requests are parsed from bytes and answers encoded to bytes, the route module
(``api/routes/v2.py``) only moves them. Sprout's model takes one input, either

- ``images``: BYTES ``[N]``, encoded images (JPEG, PNG, ...). Binary (``binary_data_size``): each element is a
  little-endian uint32 length and the raw bytes. JSON: each element is the image **base64-encoded** (JSON
  strings cannot carry raw bytes; tritonclient's ``binary_data=False`` would send them as UTF-8 and fails), or
- ``pixels``: FP32 ``[N, 3, H, W]``, preprocessed as the model metadata's ``preprocess`` says (binary or JSON),

and answers ``probabilities`` (FP32 ``[N, C]``, columns in the order of the metadata's ``labels``) and ``label``
(BYTES ``[N]``). Outputs are JSON unless ``binary_data_output`` (request) or ``binary_data`` (output) asks
for binary; a body with binary data carries ``Inference-Header-Content-Length``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from model.core.errors import SproutError
from model.serving.contract import INPUT_NAME, OUTPUT_NAME
from model.serving.predictor import PredictionResult, Predictor
from model.serving.watcher import ChampionWatcher

PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX Runtime models
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"
IMAGES, PIXELS = "images", INPUT_NAME
PROBABILITIES, LABEL = OUTPUT_NAME, "label"
OUTPUTS = (PROBABILITIES, LABEL)
MAX_BATCH = 32  # images (or tensors) per request; the whole body is capped by SPROUT_MAX_UPLOAD_MB as well
UNSUPPORTED_PARAMETERS = ("shared_memory_region", "classification")
DIGITS = re.compile(r"[0-9]{1,12}")  # the header length: int() alone would take "1_3", "+13", " 13" or "١٣"


class ProtocolError(Exception):
    """A request the protocol refuses: answered ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferRequest:
    """A parsed inference request: the input (encoded images or a pixel batch) and the outputs wanted."""

    images: list[bytes] | None = None
    pixels: np.ndarray | None = None
    outputs: list[tuple[str, bool]] = field(default_factory=list)  # (name, binary), in the order to answer
    id: str | None = None

    @property
    def size(self) -> int:
        return len(self.images) if self.images is not None else len(self.pixels)  # type: ignore[arg-type]


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "sprout", "version": version, "extensions": EXTENSIONS}


def model_metadata(name: str, predictor: Predictor) -> dict[str, Any]:
    """The metadata of the served model; ``labels`` and ``preprocess`` are Sprout's extensions: the column
    order of ``probabilities`` and how to make ``pixels`` from a picture."""
    size = predictor.spec.input_size
    return {
        "name": name,
        "versions": [predictor.version] if predictor.version else [],
        "platform": PLATFORM,
        "inputs": [{"name": IMAGES, "datatype": "BYTES", "shape": [-1]},
                   {"name": PIXELS, "datatype": "FP32", "shape": [-1, 3, size, size]}],
        "outputs": [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(predictor.labels)]},
                    {"name": LABEL, "datatype": "BYTES", "shape": [-1]}],
        "labels": list(predictor.labels),
        "preprocess": asdict(predictor.spec),
    }


def served_predictor(name: str, version: str | None, *, model_name: str, watcher: ChampionWatcher) -> Predictor:
    """The champion if the path names it: 404 for another model or version, 503 (NoChampionError) for none yet.

    The server holds one model, the champion: only its version can be asked for explicitly.
    """
    if name != model_name:
        raise ProtocolError(f"Unknown model {name!r}; this server serves {model_name!r}.", 404)
    predictor = watcher.predictor
    if version is not None and version != predictor.version:
        raise ProtocolError(f"Version {version!r} of {name!r} is not served: only the champion, version "
                            f"{predictor.version}, is.", 404)
    return predictor


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


@dataclass(frozen=True)
class Inference:
    """What a request computed: the probabilities (N, C) and one result per item (label, embedding...)."""

    probabilities: np.ndarray
    results: list[PredictionResult]


def infer(predictor: Predictor, request: InferRequest) -> Inference:
    """Run the request through the predictor (sync: call it on a prediction thread).

    Encoded images go through ``Predictor.preprocess`` (its decode limits included), exactly as ``/predict``.
    A non-finite output (finite pixels can overflow inside the network) is a ProtocolError: never answered
    (NaN is not JSON), counted or recorded.
    """
    batch = request.pixels if request.pixels is not None else np.stack(
        [_preprocess(predictor, data, i) for i, data in enumerate(request.images or [])])
    proba, features = predictor.run(batch)
    proba = np.asarray(proba, dtype=np.float32)
    if not np.isfinite(proba).all() or (features is not None and not np.isfinite(features).all()):
        raise ProtocolError("The model's output is not finite for this input: 'pixels' far outside the range "
                            "the metadata's 'preprocess' gives overflow inside the network.")
    results = [predictor.result(p, None if features is None else features[i]) for i, p in enumerate(proba)]
    return Inference(probabilities=proba, results=results)


def _preprocess(predictor: Predictor, data: bytes, index: int) -> np.ndarray:
    try:
        return predictor.preprocess(data)
    except SproutError as exc:  # the same error (and status), naming the image
        raise type(exc)(f"images[{index}]: {exc}") from exc


def _bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def encode_response(request: InferRequest, inference: Inference, *, model_name: str,
                    model_version: str | None) -> tuple[bytes, str | None]:
    """The response body and, when it carries binary data, the value of ``Inference-Header-Content-Length``."""
    n = len(inference.results)
    labels = [r.label for r in inference.results]
    outputs: list[dict[str, Any]] = []
    binary: list[bytes] = []
    for name, as_binary in request.outputs:
        tensor: dict[str, Any]
        if name == PROBABILITIES:
            tensor = {"name": name, "datatype": "FP32", "shape": list(inference.probabilities.shape)}
            raw = inference.probabilities.astype("<f4").tobytes() if as_binary else None
            data: list[Any] = inference.probabilities.ravel().tolist()
        else:
            tensor = {"name": name, "datatype": "BYTES", "shape": [n]}
            raw = _bytes_tensor([label.encode() for label in labels]) if as_binary else None
            data = labels
        if raw is None:
            tensor["data"] = data
        else:
            tensor["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        outputs.append(tensor)
    body: dict[str, Any] = {"model_name": model_name}
    if model_version:
        body["model_version"] = model_version
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    header = json.dumps(body).encode()
    if not binary:
        return header, None
    return header + b"".join(binary), str(len(header))
