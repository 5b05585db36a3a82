"""A v2 inference response as bytes: JSON, with the binary tensors after it for the outputs asked for in binary."""

from __future__ import annotations

import json
import struct
from typing import Any

from api.v2.protocol import ABSTAINED, LABEL, PROBABILITIES, Inference, InferRequest


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
        elif name == LABEL:
            tensor = {"name": name, "datatype": "BYTES", "shape": [n]}
            raw = _bytes_tensor([label.encode() for label in labels]) if as_binary else None
            data = labels
        else:  # ABSTAINED or UNFAMILIAR: one byte per image in binary
            flags = [r.abstained if name == ABSTAINED else r.unfamiliar for r in inference.results]
            tensor = {"name": name, "datatype": "BOOL", "shape": [n]}
            raw = bytes(int(flag) for flag in flags) if as_binary else None
            data = flags
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
