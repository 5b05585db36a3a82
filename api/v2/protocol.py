"""The protocol's vocabulary: input and output names, limits, its error, a parsed request, a result, metadata."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from model.serving.contract import INPUT_NAME, OUTPUT_NAME
from model.serving.predictor import PredictionResult, Predictor
from model.serving.watcher import ModelWatcher

PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX Runtime models
EXTENSIONS = ["binary_tensor_data"]
HEADER_LENGTH = "Inference-Header-Content-Length"
IMAGES, PIXELS = "images", INPUT_NAME
PROBABILITIES, LABEL = OUTPUT_NAME, "label"
ABSTAINED, UNFAMILIAR = "abstained", "unfamiliar"  # BOOL per image: the model is not sure; never saw the like
OUTPUTS = (PROBABILITIES, LABEL, ABSTAINED, UNFAMILIAR)
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


@dataclass(frozen=True)
class Inference:
    """What a request computed: the probabilities (N, C) and one result per item (label, embedding...)."""

    probabilities: np.ndarray
    results: list[PredictionResult]


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
                    {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
                    {"name": ABSTAINED, "datatype": "BOOL", "shape": [-1]},
                    {"name": UNFAMILIAR, "datatype": "BOOL", "shape": [-1]}],
        "labels": list(predictor.labels),
        "preprocess": asdict(predictor.spec),
    }


def served_predictor(name: str, version: str | None, *, model_name: str, watcher: ModelWatcher) -> Predictor:
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
