"""/admin/samples, /admin/reviews and /admin/stats: the review queue, images, decisions (and their undo) and
progress. Reviewers only."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response
from sqlalchemy.orm import Session

from api.deps import (
    CurrentReviewer,
    DriftMonitorDep,
    ServicesDep,
    SessionDep,
    StorageDep,
    get_current_reviewer,
    require_admin,
)
from api.metrics import REVIEWS
from api.schemas import (
    DriftPublic,
    LabelIssuePublic,
    LabelIssuesPublic,
    NearDuplicatePublic,
    RecentReviewPublic,
    RecentReviewsPublic,
    RelabelRequest,
    ReviewRequest,
    SamplePublic,
    SamplesPublic,
)
from db.models import Sample, SampleStatus
from model.data.near_duplicates import near_duplicate_notes
from model.data.samples import get_sample
from model.learning.promotion import announce_approvals
from model.reports.status import ReviewStats, review_stats
from model.review.actions import relabel_sample, review_sample
from model.review.label_issues import find_label_issues
from model.review.queue import QueueOrder, review_queue, suggestion_conflicts
from model.review.undo import recent_reviews, undo_review

router = APIRouter(prefix="/admin", tags=["review"], dependencies=[Depends(get_current_reviewer)])


@router.get("/samples", response_model=SamplesPublic)
def read_samples(
    session: SessionDep,
    services: ServicesDep,
    status: Annotated[SampleStatus | None, Query(description="pending, approved or rejected")] = SampleStatus.PENDING,
    order: Annotated[QueueOrder, Query(
        description="uncertainty (least confident first), novelty (farthest from the training set), diverse "
                    "(uncertain and unlike each other), suspect (labels the model doubts), oldest or newest")
                     ] = QueueOrder.UNCERTAINTY,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1,
                                 description="rows to skip; a deep offset walks every row before it")] = 0,
    cursor: Annotated[str | None, Query(max_length=512, description=(
        "the next_cursor of the previous page: the page after it, at the same cost at any depth "
        "(instead of offset)"))] = None,
) -> SamplesPublic:
    """The review queue, by default least confident predictions first (active learning). Page with ``offset``,
    or follow each page's ``next_cursor`` (keyset paging: a page 90,000 rows deep costs what the first does)."""
    page = review_queue(services, status=status, order=order, limit=limit, offset=offset, cursor=cursor)
    return SamplesPublic(data=public_samples(session, page.rows), count=page.total, next_cursor=page.next_cursor)


def public_samples(session: Session, rows: list[Sample]) -> list[SamplePublic]:
    """Samples as reviewers see them: with their near-duplicates' label and status, and the group's approved
    label where the submitter's suggestion contradicts it."""
    notes, conflicts = near_duplicate_notes(session, rows), suggestion_conflicts(session, rows)
    return [SamplePublic.model_validate(r).model_copy(update={
        "near_duplicates": [NearDuplicatePublic.model_validate(n) for n in notes.get(r.id, [])],
        "suggestion_conflict": conflicts.get(r.id)}) for r in rows]


@router.get("/samples/{sample_id}/image", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "The stored image"}})
def read_sample_image(sample_id: int, session: SessionDep, store: StorageDep) -> Response:
    """The stored image bytes of a sample."""
    sample = get_sample(session, sample_id)
    return Response(store.get(sample.object_key), media_type=sample.content_type,
                    headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})


@router.post("/samples/{sample_id}/review", response_model=SamplePublic)
def review_pending_sample(sample_id: int, review: ReviewRequest, session: SessionDep, store: StorageDep,
                          reviewer: CurrentReviewer, services: ServicesDep,
                          background: BackgroundTasks) -> SamplePublic:
    """Approve (with the predicted or a corrected label) or reject a pending sample; audit-logged. Once enough
    approvals wait for a retrain, Airflow hears of it after the response (an asset event)."""
    sample = review_sample(session, store, sample_id=sample_id, action=review.action, label=review.label,
                           reviewer=reviewer.username)
    REVIEWS.labels(sample.reviews[-1].action.value if sample.reviews else review.action).inc()
    if sample.status is SampleStatus.APPROVED:
        background.add_task(announce_approvals, services)
    return public_samples(session, [sample])[0]


@router.post("/samples/{sample_id}/undo", response_model=SamplePublic,
             responses={403: {"description": "Another reviewer's decision"},
                        409: {"description": "Nothing to undo, the window has passed, or the sample changed since"}})
def undo_own_review(sample_id: int, session: SessionDep, store: StorageDep, reviewer: CurrentReviewer,
                    services: ServicesDep) -> SamplePublic:
    """Take back your own latest decision on a sample within the undo window (SPROUT_REVIEW_UNDO_SECONDS): it is
    pending again, its object back under the pending key; audited as an ``undo`` review."""
    sample = undo_review(session, store, sample_id=sample_id, reviewer=reviewer.username,
                         undo_seconds=services.settings.review_undo_seconds)
    REVIEWS.labels("undo").inc()
    return public_samples(session, [sample])[0]


@router.get("/reviews/recent", response_model=RecentReviewsPublic)
def read_recent_reviews(session: SessionDep, reviewer: CurrentReviewer, services: ServicesDep,
                        limit: Annotated[int, Query(ge=1, le=50)] = 10) -> RecentReviewsPublic:
    """Your own latest decisions, newest first, each saying whether (and until when) you can still undo it."""
    seconds = services.settings.review_undo_seconds
    recent = recent_reviews(session, reviewer=reviewer.username, undo_seconds=seconds, limit=limit)
    return RecentReviewsPublic(reviews=[RecentReviewPublic.model_validate(r) for r in recent], undo_seconds=seconds)


@router.get("/label-issues", response_model=LabelIssuesPublic)
def read_label_issues(services: ServicesDep,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> LabelIssuesPublic:
    """Suspect labels: the last run's approved samples ranked by Cleanlab's label quality, most suspect first (each
    judged by a model that did not train on it: out-of-fold for train/val, out-of-sample for test)."""
    issues = find_label_issues(services, limit=limit)
    return LabelIssuesPublic(issues=[LabelIssuePublic.model_validate(i) for i in issues])


@router.post("/samples/{sample_id}/relabel", response_model=SamplePublic, dependencies=[Depends(require_admin)],
             responses={403: {"description": "Not an admin"}, 409: {"description": "Not an approved sample"}})
def relabel_approved_sample(sample_id: int, request: RelabelRequest, session: SessionDep, store: StorageDep,
                            reviewer: CurrentReviewer) -> SamplePublic:
    """Change an approved sample's label, or (label null) send it back to the queue. Admins only; audited."""
    sample = relabel_sample(session, store, sample_id=sample_id, label=request.label, reviewer=reviewer.username)
    REVIEWS.labels(sample.reviews[-1].action.value).inc()
    return public_samples(session, [sample])[0]


@router.get("/stats", response_model=ReviewStats)
def read_stats(services: ServicesDep) -> ReviewStats:
    """Queue size, approvals since the last training run vs the threshold, per-label counts."""
    return review_stats(services)


@router.get("/drift", response_model=DriftPublic)
def read_drift(monitor: DriftMonitorDep) -> DriftPublic:
    """Drift of live traffic: the recent predictions' embeddings against the champion's training set, their mean
    confidence against its test set's, the share of novel images (``sprout drift`` prints the same)."""
    return DriftPublic.model_validate(monitor.compute().to_dict())
