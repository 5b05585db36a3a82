"""One v2 inference request run through the champion, from its body to the response's (sync: on a prediction
thread)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from api.v2.decoding import parse_request
from api.v2.encoding import encode_response
from api.v2.protocol import Inference, InferRequest, ProtocolError
from model.core.errors import SproutError
from model.serving.predictor import Predictor


@dataclass(frozen=True)
class Answer:
    """A request answered: what it asked, what it computed, the response body and, when that carries binary
    data, the value of ``Inference-Header-Content-Length``."""

    request: InferRequest
    inference: Inference
    body: bytes
    header_length: str | None


def answer(body: bytes, header_length: str | None, content_encoding: str | None, predictor: Predictor, *,
           model_name: str, count: Callable[[int], None]) -> Answer:
    """Parse, run and encode one request. ``count(n)`` counts ``n`` predictions for the client (429 beyond its
    limit): one before parsing (a client over its limit costs nothing more), then the rest of the batch."""
    count(1)
    request = parse_request(body, header_length, input_size=predictor.spec.input_size,
                            content_encoding=content_encoding)
    count(request.size - 1)  # a batch counts each of its images
    inference = infer(predictor, request)
    content, json_length = encode_response(request, inference, model_name=model_name,
                                           model_version=predictor.version)
    return Answer(request, inference, content, json_length)


def infer(predictor: Predictor, request: InferRequest) -> Inference:
    """Run the request through the predictor (sync: call it on a prediction thread).

    Encoded images go through ``Predictor.preprocess`` (its decode limits included), exactly as ``/predict``.
    A non-finite output (finite pixels can overflow inside the network) is a ProtocolError: never answered
    (NaN is not JSON), counted or recorded.
    """
    batch = request.pixels if request.pixels is not None else np.stack(
        [_preprocess(predictor, data, i) for i, data in enumerate(request.images or [])])
    outputs = predictor.run(batch)
    proba, features = np.asarray(outputs.probabilities, dtype=np.float32), outputs.features
    if not np.isfinite(proba).all() or (features is not None and not np.isfinite(features).all()):
        raise ProtocolError("The model's output is not finite for this input: 'pixels' far outside the range "
                            "the metadata's 'preprocess' gives overflow inside the network.")
    return Inference(probabilities=proba, results=predictor.results(outputs))


def _preprocess(predictor: Predictor, data: bytes, index: int) -> np.ndarray:
    try:
        return predictor.preprocess(data)
    except SproutError as exc:  # the same error (and status), naming the image
        raise type(exc)(f"images[{index}]: {exc}") from exc
