"""POST /predict: classify one image with the champion model."""

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from api.deps import CaptureDep, PredictionPoolDep, PredictorDep, RecorderDep, RolloutDep, SettingsDep, ThrottleDep
from api.metrics import observe_prediction
from api.schemas import PredictionPublic
from api.throttle import count_predictions
from api.uploads import read_upload
from model.runtime.live_rollout import CLIENT_HEADER
from model.serving.predictor import PredictionResult

router = APIRouter(tags=["predict"])
IMAGE_BODY = {"content": {"multipart/form-data": {"example": {"file": "(binary JPEG/PNG/WebP/TIFF/BMP/GIF)"}}}}


@router.post("/predict", response_model=PredictionPublic, openapi_extra={"requestBody": IMAGE_BODY},
             responses={400: {"description": "Not a readable image"}, 413: {"description": "Too large"},
                        415: {"description": "Unsupported type"}, 429: {"description": "Too many from this address"},
                        503: {"description": "No model yet"}})
async def predict_image(file: Annotated[UploadFile, File(description="The image to classify.")],
                        predictor: PredictorDep, settings: SettingsDep, recorder: RecorderDep, throttle: ThrottleDep,
                        capture: CaptureDep, pool: PredictionPoolDep, rollout: RolloutDep,
                        request: Request) -> PredictionPublic:
    """Classify an image: label, confidence and every label's probability, and whether the model is not sure
    (``abstained``) or has never seen anything like it (``unfamiliar``); the label is the most probable either way.

    Inference runs on threads of its own (``SPROUT_PREDICT_THREADS``), never queued behind uploads or reviews that
    wait on storage or the database: predictions keep their latency while a dependency hangs. With capture on
    (``SPROUT_CAPTURE_BELOW``), a low-confidence image is handed to the background capture queue.

    During a rollout, the challenger also scores a share of images off the response path (shadow), or answers a
    share of clients (canary: the ``X-Sprout-Client`` header, else the image, decides; ``model_version`` says
    which version answered).
    """
    data = read_upload(file, int(settings.max_upload_mb * 1024 * 1024))  # spooled: small reads, no blocking

    def counted() -> PredictionResult:
        count_predictions(throttle, request, settings)  # 429 beyond SPROUT_PREDICTIONS_PER_MINUTE for this address
        return rollout.predict(predictor, data, request.headers.get(CLIENT_HEADER))

    result = await pool.run(counted)
    observe_prediction(result)
    capture.offer(data, result)
    recorder.record(result)  # the drift window: buffered, written off the request path
    return PredictionPublic(label=result.label, confidence=result.confidence, probabilities=result.probabilities,
                            model_version=result.model_version, abstained=result.abstained,
                            unfamiliar=result.unfamiliar)
