"""POST /predict: classify one image with the champion model."""

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from api.deps import PredictorDep, SettingsDep
from api.metrics import CONFIDENCE, PREDICTIONS
from api.schemas import PredictionPublic
from api.uploads import read_upload

router = APIRouter(tags=["predict"])

IMAGE_BODY = {"content": {"multipart/form-data": {"example": {"file": "(binary JPEG/PNG/WebP/TIFF/BMP/GIF)"}}}}


@router.post("/predict", response_model=PredictionPublic, openapi_extra={"requestBody": IMAGE_BODY},
             responses={400: {"description": "Not a readable image"}, 413: {"description": "Too large"},
                        415: {"description": "Unsupported type"}, 503: {"description": "No model yet"}})
def predict_image(file: Annotated[UploadFile, File(description="The image to classify.")],
                  predictor: PredictorDep, settings: SettingsDep) -> PredictionPublic:
    """Classify an image: label, confidence and every label's probability (runs in a worker thread)."""
    result = predictor.predict_bytes(read_upload(file, int(settings.max_upload_mb * 1024 * 1024)))
    PREDICTIONS.labels(result.label).inc()
    CONFIDENCE.observe(result.confidence)
    return PredictionPublic(label=result.label, confidence=result.confidence, probabilities=result.probabilities,
                            model_version=result.model_version)
