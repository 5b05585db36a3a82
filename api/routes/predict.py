"""POST /predict: classify one image with the champion model."""

import os
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Request, UploadFile

from api.deps import PredictorDep, RecorderDep, SettingsDep
from api.metrics import CONFIDENCE, PREDICTIONS
from api.schemas import PredictionPublic
from api.uploads import read_upload

router = APIRouter(tags=["predict"])


def predict_threads(setting: int | None) -> int:
    """How many predictions run at once: ``SPROUT_PREDICT_THREADS``, else one per CPU this process may use (more
    threads than cores only make each one slower and hold more buffers)."""
    return setting or len(os.sched_getaffinity(0))


def prediction_limiter(request: Request) -> anyio.CapacityLimiter:
    """The predictions' own worker threads (``predict_threads`` of them, made at start-up)."""
    limiter: anyio.CapacityLimiter = request.app.state.prediction_limiter
    return limiter

IMAGE_BODY = {"content": {"multipart/form-data": {"example": {"file": "(binary JPEG/PNG/WebP/TIFF/BMP/GIF)"}}}}


@router.post("/predict", response_model=PredictionPublic, openapi_extra={"requestBody": IMAGE_BODY},
             responses={400: {"description": "Not a readable image"}, 413: {"description": "Too large"},
                        415: {"description": "Unsupported type"}, 503: {"description": "No model yet"}})
async def predict_image(file: Annotated[UploadFile, File(description="The image to classify.")],
                        predictor: PredictorDep, settings: SettingsDep, recorder: RecorderDep,
                        request: Request) -> PredictionPublic:
    """Classify an image: label, confidence and every label's probability.

    Inference runs on threads of its own (``SPROUT_PREDICT_THREADS``), never queued behind uploads or reviews that
    wait on storage or the database: predictions keep their latency while a dependency hangs. With capture on
    (``SPROUT_CAPTURE_BELOW``), a low-confidence image is handed to the background capture queue.
    """
    data = read_upload(file, int(settings.max_upload_mb * 1024 * 1024))  # spooled: small reads, no blocking
    result = await anyio.to_thread.run_sync(predictor.predict_bytes, data, limiter=prediction_limiter(request))
    PREDICTIONS.labels(result.label).inc()
    CONFIDENCE.observe(result.confidence)
    request.app.state.capture.offer(data, result)
    recorder.record(result)  # the drift window: buffered, written off the request path
    return PredictionPublic(label=result.label, confidence=result.confidence, probabilities=result.probabilities,
                            model_version=result.model_version)
