"""/admin/labels: the labels in use and the taxonomy changes (reviewers read); rename, merge or retire a label
(admins). Each change is one audited transaction, then a retrain is asked for (``model.review.taxonomy``)."""

from fastapi import APIRouter, Depends

from api.deps import CurrentAdmin, SessionDep, SettingsDep, StorageDep, get_current_reviewer
from api.schemas import (
    LabelChangePublic,
    LabelMergeRequest,
    LabelRenameRequest,
    LabelsPublic,
    LabelSummaryPublic,
)
from model.review.taxonomy import (
    TaxonomyChange,
    label_overview,
    merge_label,
    rename_label,
    retire_label,
    with_retrain,
)

router = APIRouter(prefix="/admin/labels", tags=["labels"], dependencies=[Depends(get_current_reviewer)])

CHANGE_RESPONSES: dict[int | str, dict[str, str]] = {
    403: {"description": "Not an admin"},
    404: {"description": "No approved sample has this label (or, for a merge, the target)"},
    409: {"description": "The new name exists already, is retired or is an old name; or a sample changed meanwhile"},
    422: {"description": "Not a valid label name, or the label itself as target"},
    503: {"description": "The object store is unavailable"},
}


@router.get("", response_model=LabelsPublic)
def read_labels(session: SessionDep) -> LabelsPublic:
    """The labels of approved samples with their counts, and the latest taxonomy changes."""
    labels, changes = label_overview(session)
    return LabelsPublic(labels=[LabelSummaryPublic.model_validate(label, from_attributes=True) for label in labels],
                        changes=[_public(c) for c in changes])


@router.post("/{label}/rename", response_model=LabelChangePublic, responses=CHANGE_RESPONSES)
def rename(label: str, request: LabelRenameRequest, session: SessionDep, store: StorageDep, admin: CurrentAdmin,
           settings: SettingsDep) -> LabelChangePublic:
    """Rename a label: its approved samples (objects moved) and the pending ones predicted or suggested as it take
    the new name; audited; a retrain follows. Admins only."""
    return _public(with_retrain(settings, rename_label(session, store, label=label, to=request.to,
                                                       admin=admin.username)))


@router.post("/{label}/merge", response_model=LabelChangePublic, responses=CHANGE_RESPONSES)
def merge(label: str, request: LabelMergeRequest, session: SessionDep, store: StorageDep, admin: CurrentAdmin,
          settings: SettingsDep) -> LabelChangePublic:
    """Merge a label into an existing one; audited; a retrain follows (the champion's two columns are summed
    when the gate compares). Admins only."""
    return _public(with_retrain(settings, merge_label(session, store, label=label, into=request.into,
                                                      admin=admin.username)))


@router.post("/{label}/retire", response_model=LabelChangePublic, responses=CHANGE_RESPONSES)
def retire(label: str, session: SessionDep, store: StorageDep, admin: CurrentAdmin,
           settings: SettingsDep) -> LabelChangePublic:
    """Retire a label: its approved samples become rejected (kept, audited) and it can no longer be approved; a
    retrain follows. Admins only."""
    return _public(with_retrain(settings, retire_label(session, store, label=label, admin=admin.username)))


def _public(change: TaxonomyChange) -> LabelChangePublic:
    return LabelChangePublic.model_validate(change.to_dict())
