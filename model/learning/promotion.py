"""After training: is a retrain due, what did the gate decide, promote a candidate, roll the champion back."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db import queries, rollouts
from db.models import ChampionChangeKind, RolloutMode, RolloutOutcome, RunStatus, TrainingRun
from model.core.errors import ConflictError, NotFoundError
from model.data.label_changes import changes_after_run, describe, label_map, retrain_reason
from model.learning.gate import retrain_due
from model.learning.pipeline import train_candidate
from model.learning.run_record import RunParams, TrainOutcome
from model.runtime import rollout_control, webhooks
from model.runtime.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainCheck:
    """Whether enough samples were approved since the last run to retrain."""

    new_approved: int
    min_new_samples: int
    due: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChampionChange:
    """Where ``champion`` pointed before and after a rollback or manual promotion."""

    previous: str | None
    champion: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(session: Session, run_id: int | None) -> TrainingRun:
    """The run with this id (the latest when None), or NotFoundError."""
    run = queries.get_run(session, run_id=run_id)
    if run is None:
        raise NotFoundError(f"Training run {run_id if run_id is not None else '(latest)'} not found.")
    return run


def gate_decision(svc: Services, run_id: int | None = None) -> TrainOutcome:
    """The stored outcome of a candidate run, with its gate decision (for the DAG's branch)."""
    with svc.session() as session:
        return TrainOutcome.from_run(_run(session, run_id))


def promote_run(svc: Services, run_id: int | None = None) -> TrainOutcome:
    """Register a gate-passed candidate and point ``champion`` at it. Safe to repeat.

    Refused (ConflictError) when the champion is no longer the one the gate compared the candidate with:
    a late retry, a concurrent bootstrap or a rollback during training never replaces a newer champion.
    """
    with svc.session() as session:
        run = _run(session, run_id)
        if run.status is not RunStatus.SUCCEEDED or not run.gate_passed:
            raise ConflictError(f"Run {run.id} did not pass the gate: {run.gate_reason or run.status.value}")
        current = svc.registry.champion()
        current_version = current.version if current else None
        if run.promoted and current_version == run.registered_version:
            return TrainOutcome.from_run(run)  # a retried promotion: nothing to do
        if (stale := _labels_changed(session, run)) is not None:
            run.gate_passed, run.gate_reason = False, stale
            session.commit()
            raise ConflictError(f"Run {run.id} was not promoted: {stale}")
        if current_version != run.champion_version:  # compare-and-set on the champion the gate compared with
            raise ConflictError(
                f"Run {run.id} was gated against {_version_name(run.champion_version)}, but the champion is now "
                f"{_version_name(current_version)}; train a new candidate to compare against it.")
        if run.registered_version is None:
            model_uri = RunParams.from_dict(run.params).model_uri
            if model_uri is None:
                raise ConflictError(f"Run {run.id} logged no model to register.")
            run.registered_version = svc.registry.register(model_uri, run.mlflow_run_id or "")
            session.commit()
        if svc.settings.rollout != "direct":  # judged on live traffic first: the challenger, not the champion
            return _start_rollout(svc, session, run)
        svc.registry.set_champion(run.registered_version)
        run.promoted = True
        change = queries.record_champion_change(session, kind=ChampionChangeKind.PROMOTED_BY_RUN,
                                                version=run.registered_version, previous=current_version,
                                                changed_by=f"run {run.id}", run_id=run.id)
        session.commit()
        log.info("promoted run %s as version %s", run.id, run.registered_version)
        webhooks.champion_changed(svc.settings, change)
        return TrainOutcome.from_run(run)


def _start_rollout(svc: Services, session: Session, run: TrainingRun) -> TrainOutcome:
    """Put the run's registered version in front of live traffic as the challenger (``SPROUT_ROLLOUT``); a retry
    finds its rollout started already. An open rollout of an older run's candidate is superseded (aborted, the
    champion untouched): this one cleared the gate on newer data. An open rollout a person started stands: the
    candidate stays registered, and the outcome says how to roll it out once that one ends."""
    mode, version = RolloutMode(svc.settings.rollout), str(run.registered_version)
    if rollouts.rollout_of_run(session, run.id) is not None:
        return TrainOutcome.from_run(run)
    current = rollouts.open_rollout(session)
    if current is not None and current.run_id is None:
        note = (f"version {version} cleared the gate but is not the challenger: rollout {current.id} of version "
                f"{current.challenger_version}, started by {current.started_by}, is still open; once it ends, "
                f"`sprout rollout start {version}` puts this one in front of live traffic")
        log.warning("run %s: %s", run.id, note)
        outcome = TrainOutcome.from_run(run)
        return replace(outcome, warnings=[*outcome.warnings, note])
    if current is not None:
        ended = rollout_control.end(
            svc, RolloutOutcome.ABORTED, decided_by=f"run {run.id}", rollout_id=current.id,
            reason=f"Abort: superseded by run {run.id}'s version {version}, which cleared the gate on newer data; "
                   "the champion stays.")
        webhooks.send_event(svc.settings, "rollout.aborted", rollout_control.event(ended.rollout))
    row = rollout_control.start(svc, version, mode=mode, started_by=f"run {run.id}", run_id=run.id)
    log.info("run %s: version %s is the challenger (%s)", run.id, version, mode.value)
    webhooks.send_event(svc.settings, "rollout.started", rollout_control.event(row))
    return TrainOutcome.from_run(run)


def _labels_changed(session: Session, run: TrainingRun) -> str | None:
    """Why a candidate must not be promoted although it passed the gate: a label change recorded after its run
    started, or one that renamed or retired a label it trained (its test labels, read before the change, are the
    old ones). None when its labels are today's."""
    changes = queries.label_changes(session)
    after = changes_after_run(session, run.id)
    moved = [label for label, today in label_map(run.labels, changes).items() if today != label]
    if not after and not moved:
        return None
    shown = after or [c for c in changes if c.label in moved]
    return (f"labels changed while it trained: {'; '.join(describe(c) for c in shown)}; the forced retrain after "
            "the change trains on today's labels")


def _version_name(version: str | None) -> str:
    return f"version {version}" if version else "no champion"


def retrain_check(svc: Services, *, trigger_key: str | None = None) -> RetrainCheck:
    """How many samples were approved since the last run, and whether that is enough to retrain.

    With ``trigger_key``: a run that key already trained counts as due, so a cleared DAG run goes on
    to the gate and promotion of its candidate instead of stopping at "0 new samples". A taxonomy change since
    the last successful run makes a retrain due whatever the count (``model.data.label_changes``).
    """
    minimum = svc.settings.min_new_samples
    with svc.session() as session:
        new = queries.count_new_approved(session)
        done = (queries.get_run_by_trigger_key(session, key=trigger_key, status=RunStatus.SUCCEEDED)
                if trigger_key else None)
        changed = retrain_reason(session)
    if done is not None:
        return RetrainCheck(new, minimum, True, f"run {done.id} already trained a candidate for {trigger_key}")
    due = retrain_due(new_approved=new, min_new=minimum)
    if not due.passed and changed:  # an admin renamed, merged or retired a label since the last run
        return RetrainCheck(new, minimum, True, changed)
    return RetrainCheck(new, minimum, due.passed, due.reason)


def announce_approvals(svc: Services) -> bool:
    """After an approval: once enough samples wait for a retrain, tell Airflow (an event on the retrain DAG's
    asset), so it retrains within seconds instead of at the weekly run. Every approval past the threshold
    announces; Airflow folds events that arrive before the run starts into it. False when nothing was sent
    (below the threshold, Airflow not configured or unreachable: the weekly run stays the fallback)."""
    from model.core.errors import OrchestratorUnavailableError
    from model.runtime.airflow_client import AirflowClient

    settings = svc.settings
    if not settings.airflow_url:
        return False
    try:
        with svc.session() as session:
            new = queries.count_new_approved(session)
    except SQLAlchemyError as exc:
        log.warning("could not count new approved samples to announce them: %s", exc)
        return False
    if not retrain_due(new_approved=new, min_new=settings.min_new_samples).passed:
        return False
    try:
        AirflowClient.from_settings(settings).emit_asset_event(settings.retrain_asset,
                                                               extra={"new_approved": new})
    except OrchestratorUnavailableError as exc:
        log.warning("could not announce %d new approved samples to Airflow (the weekly run will train): %s",
                    new, exc)
        return False
    log.info("announced %d new approved samples to Airflow (asset %s)", new, settings.retrain_asset)
    return True


def train(svc: Services, *, force: bool = False, backbone_name: str | None = None) -> TrainOutcome:
    """Train a candidate and promote it if the gate passes."""
    outcome = train_candidate(svc, force=force, backbone_name=backbone_name)
    if outcome.skipped or not outcome.gate or not outcome.gate.passed:
        return outcome
    return promote_run(svc, outcome.run_id)


def rollback(svc: Services, version: str | None = None, *, by: str = "command line") -> ChampionChange:
    """Move ``champion`` to ``version`` or, by default, to the version promoted before the current one; audited
    (``champion_changes``: a rollback to an older version, else a promotion, made ``by`` this user)."""
    current = svc.registry.champion()
    if version is None:
        if current is None:
            raise NotFoundError("No champion to roll back from.")
        older = [v for v in svc.registry.versions() if int(v.version) < int(current.version)]
        if not older:
            raise NotFoundError(f"Version {current.version} is the first version; nothing to roll back to.")
        version = older[-1].version
    svc.registry.set_champion(str(version))
    previous = current.version if current else None
    back = previous is not None and previous.isdigit() and str(version).isdigit() and int(version) < int(previous)
    with svc.session() as session:
        change = queries.record_champion_change(
            session, kind=ChampionChangeKind.ROLLED_BACK if back else ChampionChangeKind.PROMOTED,
            version=str(version), previous=previous, changed_by=by)
        session.commit()
    log.info("champion moved from %s to %s by %s", previous, version, by)
    webhooks.champion_changed(svc.settings, change)
    return ChampionChange(previous=previous, champion=str(version))
