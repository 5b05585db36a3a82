"""Serving-side inference with ONNX Runtime only (this module never imports torch).

The ONNX graph carries its labels and preprocessing in its metadata, so a Predictor needs
nothing but the model file; it shares ``model.data.images`` with training.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model.data.images import DEFAULT_MAX_PIXELS, PreprocessSpec, load_and_preprocess
from model.data.samples import Prediction
from model.serving.contract import INPUT_NAME, META_LABELS, META_PREPROCESS, OUTPUT_NAME


@dataclass(frozen=True)
class PredictionResult:
    """One image's answer."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    model_version: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class Predictor:
    """A fused classifier loaded into an ONNX Runtime session."""

    session: ort.InferenceSession
    labels: list[str]
    spec: PreprocessSpec
    version: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS  # decode limit of an image to classify

    @classmethod
    def load(cls, model: Path | bytes, *, version: str | None = None, threads: int | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS) -> Predictor:
        """Load an exported Sprout ONNX model from a path or bytes."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = str(model) if isinstance(model, Path) else model
        session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        meta = dict(session.get_modelmeta().custom_metadata_map)
        return cls(session=session, labels=json.loads(meta[META_LABELS]),
                   spec=PreprocessSpec.from_json(meta[META_PREPROCESS]), version=version, metadata=meta,
                   max_pixels=max_pixels)

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for a preprocessed float32 NCHW batch."""
        (proba,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(proba)

    def preprocess(self, data: bytes) -> np.ndarray:
        return load_and_preprocess(data, self.spec, max_pixels=self.max_pixels)

    def result(self, proba: np.ndarray) -> PredictionResult:
        best = int(np.argmax(proba))
        return PredictionResult(
            label=self.labels[best], confidence=float(proba[best]),
            probabilities={label: float(p) for label, p in zip(self.labels, proba, strict=True)},
            model_version=self.version,
        )

    def prediction(self, data: bytes) -> Prediction:
        """The label, confidence and version to record with a submitted sample."""
        result = self.predict_bytes(data)
        return Prediction(result.label, result.confidence, result.model_version)

    def predict_bytes(self, data: bytes) -> PredictionResult:
        """Decode, preprocess and classify one image given as bytes."""
        return self.result(self.predict_arrays(self.preprocess(data)[None])[0])

    def predict_many(self, images: list[bytes], batch_size: int = 16) -> list[PredictionResult]:
        """Classify several images in batches."""
        results: list[PredictionResult] = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.preprocess(d) for d in images[start : start + batch_size]])
            results.extend(self.result(p) for p in self.predict_arrays(batch))
        return results
