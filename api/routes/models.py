"""GET /models (public history) and POST /admin/models/{version}/promote (promote or roll back: admins only)."""

from fastapi import APIRouter

from api.deps import CurrentAdmin, RolloutDep, ServicesDep, WatcherDep
from api.schemas import ChampionChangePublic, ModelsPublic, PromoteResult, RunPublic
from model.learning.promotion import rollback
from model.reports.history import model_history

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsPublic)
def read_models(services: ServicesDep, watcher: WatcherDep, rollout: RolloutDep) -> ModelsPublic:
    """Registered versions with their metrics, every training run with its gate decision, the champion, and the
    challenger during a rollout."""
    history = model_history(services)
    live = rollout.active()
    return ModelsPublic(champion=history.champion, serving=watcher.version,
                        challenger=live[0].challenger_version if live else None,
                        versions=history.versions,
                        runs=[RunPublic.model_validate(r) for r in history.runs],
                        changes=[ChampionChangePublic.model_validate(c) for c in history.changes])


@router.post("/admin/models/{version}/promote", response_model=PromoteResult,
             responses={403: {"description": "Not an admin"}})
def promote_version(version: str, services: ServicesDep, watcher: WatcherDep, admin: CurrentAdmin) -> PromoteResult:
    """Make a registered version the champion (e.g. roll back); the API serves it at once; recorded with the
    admin's name (``/models`` ``changes``). Admins only."""
    result = rollback(services, version, by=admin.username)
    watcher.refresh()
    return PromoteResult.model_validate(result)
