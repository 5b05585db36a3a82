"""POST /samples: submit an image for review (stored in the pending area with the model's guess)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from api.deps import SessionDep, SettingsDep, StorageDep, WatcherDep
from api.metrics import UPLOADS
from api.schemas import SamplePublic
from api.uploads import read_upload
from db.models import SampleSource
from model.data.samples import submit_sample

router = APIRouter(prefix="/samples", tags=["samples"])


@router.post("", response_model=SamplePublic, status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "Exact duplicate: the existing sample"}})
def create_sample(
    file: Annotated[UploadFile, File(description="The image to submit.")],
    session: SessionDep, store: StorageDep, settings: SettingsDep, watcher: WatcherDep, response: Response,
    label: Annotated[str | None, Form(max_length=64, description="Suggested label (optional).")] = None,
) -> SamplePublic:
    """Store an image in the pending area with the champion's prediction; duplicates return the existing one."""
    data = read_upload(file, int(settings.max_upload_mb * 1024 * 1024))
    predictor = watcher.current
    sample, created = submit_sample(session, store, data=data, source=SampleSource.UPLOAD,
                                    suggested_label=label or None,
                                    predict=predictor.prediction if predictor else None,
                                    max_pixels=settings.max_image_pixels)
    UPLOADS.labels("created" if created else "duplicate").inc()
    if not created:
        response.status_code = status.HTTP_200_OK
    return SamplePublic.model_validate(sample)
