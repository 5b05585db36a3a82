"""POST/GET /admin/retrain: start the retrain DAG in Airflow now, and show its latest runs.

Reviewers may start a run (it still waits for enough new approvals); forcing a retrain needs an admin.
"""

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException, status

from api.deps import CurrentReviewer, ServicesDep, SettingsDep, get_current_reviewer
from api.schemas import DagRunPublic, RetrainRequest, RetrainRunPublic, RetrainRuns
from model.runtime.airflow_client import AirflowClient
from model.runtime.web_links import airflow_run_url, mlflow_run_url, training_experiment_id

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


@router.get("", response_model=RetrainRuns,
            responses={503: {"description": "Airflow not configured or unreachable"}})
def read_retrain_runs(settings: SettingsDep, services: ServicesDep) -> RetrainRuns:
    """The latest runs of the retrain DAG and what each did: queued, running (which task), skipped (why),
    promoted (which version), refused by the gate (why) or failed (in which task), with links to Airflow and
    MLflow when their public URLs are set."""
    found = AirflowClient.from_settings(settings).recent_outcomes()
    experiment = (training_experiment_id(services.registry)
                  if settings.mlflow_public_url and any(o.mlflow_run_id for _, o in found) else None)
    return RetrainRuns(dag_id=settings.retrain_dag_id, runs=[RetrainRunPublic(
        **asdict(run), outcome=outcome.outcome, reason=outcome.reason, task=outcome.task,
        training_run_id=outcome.training_run_id, version=outcome.version,
        airflow_url=airflow_run_url(settings.airflow_public_url, settings.retrain_dag_id, run.dag_run_id),
        mlflow_url=mlflow_run_url(settings.mlflow_public_url, experiment, outcome.mlflow_run_id))
        for run, outcome in found])
