"""POST /samples: submit an image for review (stored in the pending area with the model's guess)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile, status

from api.deps import OptionalReviewer, ServicesDep, SessionDep, SettingsDep, StorageDep, ThrottleDep, WatcherDep
from api.metrics import UPLOADS
from api.schemas import SampleReceipt
from api.throttle import client_address
from api.uploads import read_upload
from db.models import SampleSource
from model.data.samples import submit_sample

router = APIRouter(prefix="/samples", tags=["samples"])


@router.post("", response_model=SampleReceipt, status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "Exact duplicate: `duplicate: true`, with the existing sample's id and "
                                             "status for a reviewer only (anonymous: both null)"},
                        401: {"description": "A bearer token was sent and refused (send none to upload anonymously)"},
                        429: {"description": "Too many uploads from this address, or the review queue is full"}})
def create_sample(
    file: Annotated[UploadFile, File(description="The image to submit.")],
    session: SessionDep, store: StorageDep, settings: SettingsDep, watcher: WatcherDep, services: ServicesDep,
    throttle: ThrottleDep,
    response: Response,
    request: Request,
    reviewer: OptionalReviewer,
    label: Annotated[str | None, Form(max_length=64, description="Suggested label (optional).")] = None,
) -> SampleReceipt:
    """Store an image in the pending area with the champion's prediction; an exact duplicate is not stored again.

    A duplicate's receipt (200, ``duplicate: true``) names the existing sample (id, status) only to a reviewer
    (bearer token), and so does ``near_duplicates`` (the existing samples the image nearly duplicates: a resized,
    re-encoded or cropped copy, most similar first): either reveals training-set membership.
    """
    # per address: a person dropping 20 photos at once through the Streamlit server stays far below the default
    throttle.hit(f"{settings.uploads_per_minute}/minute", "upload-ip", client_address(request))
    data = read_upload(file, int(settings.max_upload_mb * 1024 * 1024))
    predictor = watcher.current
    sample, created = submit_sample(session, store, data=data, source=SampleSource.UPLOAD,
                                    suggested_label=label or None,
                                    model=predictor,
                                    max_pixels=settings.max_image_pixels, max_pending=settings.max_pending_samples,
                                    near_duplicates=services.near_duplicates)
    UPLOADS.labels("created" if created else "duplicate").inc()
    if not created:
        response.status_code = status.HTTP_200_OK
        if reviewer is None:
            return SampleReceipt(id=None, status=None, duplicate=True)
        return SampleReceipt(id=sample.id, status=sample.status, duplicate=True)
    receipt = SampleReceipt.model_validate(sample)
    return receipt if reviewer is not None else receipt.model_copy(update={"near_duplicates": []})
