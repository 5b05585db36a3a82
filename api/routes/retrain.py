"""POST/GET /admin/retrain: start the retrain DAG in Airflow now, and show its latest runs.

Reviewers may start a run (it still waits for enough new approvals); forcing a retrain needs an admin.
"""

from fastapi import APIRouter, Depends, HTTPException, status

from api.deps import CurrentReviewer, SettingsDep, get_current_reviewer
from api.schemas import DagRunPublic, RetrainRequest, RetrainRuns
from model.runtime.airflow_client import AirflowClient

router = APIRouter(prefix="/admin/retrain", tags=["retrain"], dependencies=[Depends(get_current_reviewer)])


@router.post("", response_model=DagRunPublic, status_code=status.HTTP_202_ACCEPTED,
             responses={403: {"description": "Forcing a retrain needs an admin"},
                        503: {"description": "Airflow not configured or unreachable"}})
def trigger_retrain(settings: SettingsDep, reviewer: CurrentReviewer, request: RetrainRequest | None = None
                    ) -> DagRunPublic:
    """Trigger the `sprout_retrain` DAG (it still skips training below the threshold unless forced)."""
    force = bool(request and request.force)
    if force and not reviewer.is_admin:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Only an admin can force a retrain.")
    run = AirflowClient.from_settings(settings).trigger(force=force,
                                                        note=f"triggered by {reviewer.username} from Sprout")
    return DagRunPublic.model_validate(run)


@router.get("", response_model=RetrainRuns)
def read_retrain_runs(settings: SettingsDep) -> RetrainRuns:
    """The latest runs of the retrain DAG and their states."""
    runs = AirflowClient.from_settings(settings).recent_runs()
    return RetrainRuns(dag_id=settings.retrain_dag_id, runs=[DagRunPublic.model_validate(r) for r in runs])
