"""Serving-side inference with ONNX Runtime only (this module never imports torch).

The ONNX graph carries its labels and preprocessing in its metadata, so a Predictor needs
nothing but the model file; it shares ``model.data.images`` with training.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model.data.images import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    PreprocessSpec,
    decode_for,
    load_and_preprocess,
    preprocess_decoded,
)
from model.data.samples import Prediction
from model.serving.contract import (
    FEATURES_NAME,
    INPUT_NAME,
    META_BACKBONE,
    META_LABELS,
    META_PREPROCESS,
    OUTPUT_NAME,
    UNFAMILIARITY_NAME,
)
from model.serving.guards import Guards


@dataclass(frozen=True)
class PredictionResult:
    """One image's answer, with the backbone embedding the same pass computed (None for older graphs).

    ``label`` is always the most probable label; ``abstained``: the model is not sure of it (its confidence is
    below the label's threshold); ``unfamiliar``: the image looks like nothing the model was trained on (both
    False for models trained before them, see ``model.serving.guards``).
    """

    label: str
    confidence: float
    probabilities: dict[str, float]
    model_version: str | None = None
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)
    backbone: str | None = field(default=None, compare=False)
    abstained: bool = False
    unfamiliar: bool = False

    def to_dict(self) -> dict[str, object]:
        """The answer as JSON-ready data (without the embedding)."""
        data = asdict(self)
        data.pop("embedding")
        data.pop("backbone")
        return data

    def as_prediction(self) -> Prediction:
        """The label, confidence, version and embedding to record with a sample."""
        return Prediction(self.label, self.confidence, self.model_version, embedding=self.embedding,
                          backbone=self.backbone, unfamiliar=self.unfamiliar)


@dataclass(frozen=True)
class Outputs:
    """One batch through the graph: probabilities (N, classes), embeddings (N, dim) and unfamiliarity (N,); the
    last two are None for graphs without them."""

    probabilities: np.ndarray
    features: np.ndarray | None = None
    unfamiliarity: np.ndarray | None = None


@dataclass
class Predictor:
    """A fused classifier loaded into an ONNX Runtime session."""

    session: ort.InferenceSession
    labels: list[str]
    spec: PreprocessSpec
    version: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    max_pixels: int = DEFAULT_MAX_PIXELS  # decode limit of an image to classify
    outputs: list[str] = field(default_factory=lambda: [OUTPUT_NAME])  # + FEATURES_NAME, UNFAMILIARITY_NAME
    guards: Guards = field(default_factory=Guards)  # when the model abstains or calls an image unfamiliar
    # At most this many decodes, preprocessings and graph runs at once, whichever threads ask (None: no bound).
    # Uploads run on the API's many worker threads; unbounded, 60 of them decode and run at once and starve the
    # event loop. Each step takes and returns a slot on its own: never call one of them while holding a slot
    # (the semaphore is not reentrant, and with one CPU there is one slot).
    slots: threading.Semaphore | None = field(default=None, repr=False, compare=False)

    def _slot(self) -> contextlib.AbstractContextManager[object]:
        return self.slots if self.slots is not None else contextlib.nullcontext()

    @property
    def backbone(self) -> str | None:
        """The backbone the graph embeds with (its embeddings are cached under this name)."""
        return self.metadata.get(META_BACKBONE)

    @property
    def embeds(self) -> bool:
        """Whether a prediction also gives the embedding (graphs exported since it was added)."""
        return FEATURES_NAME in self.outputs

    @classmethod
    def load(cls, model: Path | bytes, *, version: str | None = None, threads: int | None = None,
             max_pixels: int = DEFAULT_MAX_PIXELS, slots: threading.Semaphore | None = None) -> Predictor:
        """Load an exported Sprout ONNX model from a path or bytes (``slots``: see the field)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = str(model) if isinstance(model, Path) else model
        session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        meta = dict(session.get_modelmeta().custom_metadata_map)
        outputs = {o.name for o in session.get_outputs()}
        return cls(outputs=[name for name in (OUTPUT_NAME, FEATURES_NAME, UNFAMILIARITY_NAME) if name in outputs],
                   session=session, labels=json.loads(meta[META_LABELS]),
                   spec=PreprocessSpec.from_json(meta[META_PREPROCESS]), version=version, metadata=meta,
                   max_pixels=max_pixels, slots=slots, guards=Guards.from_metadata(meta))

    def predict_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for a preprocessed float32 NCHW batch."""
        return self.run(batch).probabilities

    def run(self, batch: np.ndarray) -> Outputs:
        """Probabilities, embeddings and unfamiliarity (those the graph has) in one pass."""
        feed = {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}
        with self._slot():
            found = dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))
        features, unfamiliarity = found.get(FEATURES_NAME), found.get(UNFAMILIARITY_NAME)
        return Outputs(probabilities=np.asarray(found[OUTPUT_NAME]),
                       features=None if features is None else np.asarray(features, dtype=np.float32),
                       unfamiliarity=None if unfamiliarity is None else np.asarray(unfamiliarity, dtype=np.float32))

    def preprocess(self, data: bytes) -> np.ndarray:
        with self._slot():
            return load_and_preprocess(data, self.spec, max_pixels=self.max_pixels)

    def decode(self, data: bytes) -> DecodedImage:
        """Decode an image once, no larger than this model needs (``predict_decoded`` classifies it)."""
        with self._slot():
            return decode_for(data, self.spec, max_pixels=self.max_pixels)

    def predict_decoded(self, decoded: DecodedImage) -> PredictionResult:
        """Classify an image ``decode`` decoded."""
        with self._slot():
            batch = preprocess_decoded(decoded, self.spec)[None]
        return self.results(self.run(batch))[0]

    def prediction_of(self, decoded: DecodedImage) -> Prediction:
        """The label, confidence, version and embedding to record with a sample decoded by ``decode``."""
        return self.predict_decoded(decoded).as_prediction()

    def result(self, proba: np.ndarray, embedding: np.ndarray | None = None,
               unfamiliarity: float | None = None) -> PredictionResult:
        """One image's answer from its probabilities (and embedding and unfamiliarity, when the graph gives them)."""
        best = int(np.argmax(proba))
        label, confidence = self.labels[best], float(proba[best])
        return PredictionResult(
            label=label, confidence=confidence,
            probabilities={label: float(p) for label, p in zip(self.labels, proba, strict=True)},
            model_version=self.version, embedding=embedding, backbone=self.backbone,
            abstained=self.guards.abstains(label, confidence), unfamiliar=self.guards.is_unfamiliar(unfamiliarity),
        )

    def results(self, outputs: Outputs) -> list[PredictionResult]:
        """Each image's answer in a batch's outputs."""
        features, unfamiliarity = outputs.features, outputs.unfamiliarity
        return [self.result(p, None if features is None else features[i],
                            None if unfamiliarity is None else float(unfamiliarity[i]))
                for i, p in enumerate(outputs.probabilities)]

    def predict_bytes(self, data: bytes) -> PredictionResult:
        """Decode, preprocess and classify one image given as bytes."""
        return self.results(self.run(self.preprocess(data)[None]))[0]

    def predict_many(self, images: list[bytes], batch_size: int = 16) -> list[PredictionResult]:
        """Classify several images in batches."""
        results: list[PredictionResult] = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.preprocess(d) for d in images[start : start + batch_size]])
            results += self.results(self.run(batch))
        return results
