"""POST /predict: classify one image with the champion model."""

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypeVar

from fastapi import APIRouter, File, Request, UploadFile

from api.deps import PredictorDep, RecorderDep, SettingsDep
from api.metrics import observe_prediction
from api.schemas import PredictionPublic
from api.throttle import count_predictions
from api.uploads import read_upload
from model.serving.predictor import PredictionResult

router = APIRouter(tags=["predict"])


def predict_threads(setting: int | None) -> int:
    """How many predictions run at once: ``SPROUT_PREDICT_THREADS``, else one more than the CPUs this process may
    use. With one per CPU, about a tenth of the cores sat idle under load (`bench/serve.py`): a prediction thread
    waits for the GIL each time it hands its result to the event loop or picks up the next request, and the
    spare thread runs its model meanwhile (+20 MB of buffers)."""
    return setting or len(os.sched_getaffinity(0)) + 1


_T = TypeVar("_T")


def prediction_pool(threads: int) -> ThreadPoolExecutor:
    """The predictions' own worker threads (``predict_threads`` of them, made at start-up).

    A plain executor, not anyio's shared workers behind a capacity limiter: a thread that finishes a prediction
    takes the next queued one at once, where the limiter handed each token back through the event loop first
    (a core idled while the loop, or the GIL it waited for, was busy).
    """
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sprout-predict")


async def run_prediction(request: Request, fn: Callable[..., _T], *args: object) -> _T:
    """``fn(*args)`` on a prediction thread; waits without blocking the event loop."""
    pool: ThreadPoolExecutor = request.app.state.prediction_pool
    return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

IMAGE_BODY = {"content": {"multipart/form-data": {"example": {"file": "(binary JPEG/PNG/WebP/TIFF/BMP/GIF)"}}}}


@router.post("/predict", response_model=PredictionPublic, openapi_extra={"requestBody": IMAGE_BODY},
             responses={400: {"description": "Not a readable image"}, 413: {"description": "Too large"},
                        415: {"description": "Unsupported type"}, 429: {"description": "Too many from this address"},
                        503: {"description": "No model yet"}})
async def predict_image(file: Annotated[UploadFile, File(description="The image to classify.")],
                        predictor: PredictorDep, settings: SettingsDep, recorder: RecorderDep,
                        request: Request) -> PredictionPublic:
    """Classify an image: label, confidence and every label's probability.

    Inference runs on threads of its own (``SPROUT_PREDICT_THREADS``), never queued behind uploads or reviews that
    wait on storage or the database: predictions keep their latency while a dependency hangs. With capture on
    (``SPROUT_CAPTURE_BELOW``), a low-confidence image is handed to the background capture queue.
    """
    data = read_upload(file, int(settings.max_upload_mb * 1024 * 1024))  # spooled: small reads, no blocking

    def counted() -> PredictionResult:
        count_predictions(request, settings)  # 429 beyond SPROUT_PREDICTIONS_PER_MINUTE for this address
        return predictor.predict_bytes(data)

    result = await run_prediction(request, counted)
    observe_prediction(result)
    request.app.state.capture.offer(data, result)
    recorder.record(result)  # the drift window: buffered, written off the request path
    return PredictionPublic(label=result.label, confidence=result.confidence, probabilities=result.probabilities,
                            model_version=result.model_version)
