"""GET /rollouts (public: the challenger and its live comparison) and the admins' override: start a rollout of any
registered Sprout version, promote or abort the open one (audited under the admin's name)."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, status

from api.deps import CurrentAdmin, RolloutDep, ServicesDep, WatcherDep
from api.schemas import RolloutDecisionRequest, RolloutPublic, RolloutsPublic, RolloutStart
from db.models import RolloutMode, RolloutOutcome
from model.rollout.judge import RolloutReport, begin, override
from model.rollout.judge import status as rollout_status
from model.runtime.services import Services

router = APIRouter(tags=["rollouts"])
FRESH_SECONDS = 10.0  # the public view reads every observation: computed at most this often per process


class _Cached:
    """The latest rollout reports, recomputed when older than ``FRESH_SECONDS``, after a change here, or when what
    this process follows changed (the open rollout its poll read, the challenger it serves): a rollout started or
    ended through another replica or the CLI shows here as soon as its challenger does, within the poll interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -FRESH_SECONDS
        self._seen: object = None
        self._value: list[RolloutPublic] = []

    def get(self, services: Services, seen: object) -> list[RolloutPublic]:
        """The reports; ``seen``: what this process follows now (recomputed when it changed)."""
        with self._lock:
            if time.monotonic() - self._at > FRESH_SECONDS or seen != self._seen:
                self._value = [public(r) for r in rollout_status(services)]
                self._at, self._seen = time.monotonic(), seen
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._at = -FRESH_SECONDS


CACHE = _Cached()


def public(made: RolloutReport) -> RolloutPublic:
    return RolloutPublic.model_validate(made.to_dict())


@router.get("/rollouts", response_model=RolloutsPublic)
def read_rollouts(services: ServicesDep, rollout: RolloutDep) -> RolloutsPublic:
    """The challenger this process scores beside the champion, and the latest rollouts with their live comparison
    (paired counts and McNemar on reviewed live images, agreement, errors, p99 latency), in numbers and words, and
    what the rule would do now (the evidence refreshed every 10 s; a rollout started or ended shows as soon as this
    process follows it)."""
    live = rollout.active()
    challenger = live[0].challenger_version if live else None
    return RolloutsPublic(challenger=challenger, rollouts=CACHE.get(services, (rollout.open, challenger)))


@router.post("/admin/rollouts", response_model=RolloutPublic, status_code=status.HTTP_201_CREATED,
             responses={403: {"description": "Not an admin"}, 404: {"description": "No such version"},
                        409: {"description": "A rollout is open, or the version is the champion or not Sprout's"}})
def start_rollout(request: RolloutStart, services: ServicesDep, rollout: RolloutDep,
                  admin: CurrentAdmin) -> RolloutPublic:
    """Put a registered version in front of live traffic as the challenger (shadow or canary). Admins only;
    recorded under the admin's name."""
    made = begin(services, request.version, mode=RolloutMode(request.mode), by=admin.username)
    CACHE.clear()
    rollout.refresh()
    rollout.challenger.refresh()
    return public(made)


def _decide(outcome: RolloutOutcome, request: RolloutDecisionRequest, services: Services, rollout: RolloutDep,
            watcher: WatcherDep, admin: CurrentAdmin) -> RolloutPublic:
    made = override(services, outcome, by=admin.username, reason=request.reason, rollout_id=request.rollout_id)
    CACHE.clear()
    watcher.refresh()
    rollout.refresh()
    rollout.challenger.refresh()
    return public(made)


@router.post("/admin/rollouts/current/promote", response_model=RolloutPublic,
             responses={403: {"description": "Not an admin"}, 404: {"description": "No rollout is open"},
                        409: {"description": "Decided by someone else meanwhile, or `rollout_id` is not the open one"}})
def promote_rollout(request: RolloutDecisionRequest, services: ServicesDep, rollout: RolloutDep,
                    watcher: WatcherDep, admin: CurrentAdmin) -> RolloutPublic:
    """Promote the open rollout's challenger to champion now, whatever the rule says. Admins only; audited."""
    return _decide(RolloutOutcome.PROMOTED, request, services, rollout, watcher, admin)


@router.post("/admin/rollouts/current/abort", response_model=RolloutPublic,
             responses={403: {"description": "Not an admin"}, 404: {"description": "No rollout is open"},
                        409: {"description": "Decided by someone else meanwhile, or `rollout_id` is not the open one"}})
def abort_rollout(request: RolloutDecisionRequest, services: ServicesDep, rollout: RolloutDep,
                  watcher: WatcherDep, admin: CurrentAdmin) -> RolloutPublic:
    """Abort the open rollout: the challenger is discarded, the champion stays. Admins only; audited."""
    return _decide(RolloutOutcome.ABORTED, request, services, rollout, watcher, admin)
