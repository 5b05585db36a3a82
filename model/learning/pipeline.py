"""The training pipeline: train a candidate on the approved samples, evaluate it, gate it, log it.

``train_candidate`` runs named steps, each in its module, so the CLI, the API and the Airflow DAG get the same run:
gather the trainable samples (``gate.select_trainable``) → assess a candidate per backbone: embed, cross-validate
(``assessment``, ``training_data``) → select one (``candidates``) → fit its final head, evaluate it beside the
champion and gate it (``final_evaluation``) → log it to MLflow and record the run (``recording``).
Promotion lives in ``model.learning.promotion``.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections.abc import Sequence

from sqlalchemy.orm import Session

from db import queries
from db.models import RunStatus, Sample, TrainingRun, utcnow
from model.data.class_balance import class_balance, count_per_split
from model.data.label_changes import retrain_reason, without_stale
from model.learning.assessment import Candidate, assess_candidate
from model.learning.candidates import (
    AssessedCandidate,
    Dominance,
    dominant_backbone,
    merge_candidates,
    select_candidate,
)
from model.learning.final_evaluation import evaluate_candidate, fit_head
from model.learning.gate import Decision, retrain_due, select_trainable
from model.learning.guards import fit_guards
from model.learning.recording import log_to_mlflow, record_run
from model.learning.run_record import RunParams, TrainOutcome
from model.runtime.services import Services
from model.serving.contract import META_TRAINING_RUN

log = logging.getLogger(__name__)


def new_approved_count(session: Session) -> int:
    """Approved samples the last successful run did not train or test on."""
    return queries.count_new_approved(session)


def imbalance_warnings(svc: Services, samples: list[Sample]) -> list[str]:
    """A warning for each label of the run with fewer samples than ``SPROUT_IMBALANCE_MIN_RATIO`` × the mean."""
    warnings = class_balance(count_per_split(samples), min_ratio=svc.settings.imbalance_min_ratio).warnings
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def train_candidate(svc: Services, *, force: bool = False, backbone_name: str | None = None,
                    trigger_key: str | None = None,
                    tried: Sequence[AssessedCandidate] | None = None) -> TrainOutcome:
    """Train a candidate per backbone (``backbone_name`` or ``SPROUT_CANDIDATE_BACKBONES``) on all approved
    samples, keep the one with the best cross-validated log loss, evaluate and gate it, log it to MLflow;
    register nothing.

    Skipped (no run recorded) unless enough samples were approved since the last run or ``force``.
    With ``trigger_key`` (e.g. an Airflow run id) a retry returns the run that key already produced.
    ``tried``: the candidates assessed elsewhere (the DAG's mapped tasks), recorded with the run beside
    ``backbone_name``, their winner.
    """
    settings = svc.settings
    names = [backbone_name] if backbone_name else settings.candidate_backbone_names
    with svc.session() as session:
        if trigger_key is not None:
            done = queries.get_run_by_trigger_key(session, key=trigger_key)
            if done is not None and done.status is RunStatus.SUCCEEDED:
                log.info("run %s already trained a candidate for %s", done.id, trigger_key)
                return TrainOutcome.from_run(done)
            if done is not None:  # a failed or interrupted attempt: this retry takes the key over
                done.trigger_key = None
                session.commit()
        due = retrain_due(new_approved=queries.count_new_approved(session), min_new=settings.min_new_samples,
                          force=force)
        if not due.passed and (changed := retrain_reason(session)):  # an admin renamed, merged or retired a label
            due = Decision(True, changed)
        log.info("retrain due? %s", due.reason)
        if not due.passed:
            return TrainOutcome(skipped=True, reason=due.reason)
        started = utcnow()  # before the samples are read: a label change after this is one the run has not seen
        current, stale = without_stale(queries.approved_samples(session), queries.label_changes(session))
        samples, labels, warnings = select_trainable(current)
        warnings = [*stale, *warnings, *imbalance_warnings(svc, samples)]
        dominance = None if backbone_name or tried else dominant(session, svc, names)
        if dominance is not None:
            log.info("assessing only %s: %s", dominance.backbone, dominance.reason)
            names = [dominance.backbone]
        run = TrainingRun(backbone=names[0], labels=labels, status=RunStatus.RUNNING, trigger_key=trigger_key,
                          started_at=started,
                          params=RunParams(warnings=tuple(warnings), skipped=None if dominance is None else
                                           dict.fromkeys(dominance.skipped, dominance.reason)).to_dict())
        session.add(run)
        session.commit()
        try:
            _train(svc, session, run, samples, labels, names, tried or ())
        except BaseException as exc:
            session.rollback()
            run.status, run.finished_at = RunStatus.FAILED, utcnow()
            run.error = "".join(traceback.format_exception_only(exc)).strip()
            run.trigger_key = None
            session.commit()
            raise
        return TrainOutcome.from_run(run)


def dominant(session: Session, svc: Services, names: list[str]) -> Dominance | None:
    """The backbone this run may assess alone (``candidates.dominant_backbone`` on the latest succeeded runs with
    ``SPROUT_CANDIDATE_DOMINANCE_RUNS`` and ``SPROUT_CANDIDATE_DOMINANCE_MARGIN``), or None."""
    runs = svc.settings.candidate_dominance_runs
    if runs <= 0 or len(names) < 2:
        return None
    history = [RunParams.from_dict(r.params).candidates or ()
               for r in queries.recent_succeeded_runs(session, limit=4 * runs)]
    return dominant_backbone(history, names, runs=runs, margin=svc.settings.candidate_dominance_margin)


def assess_candidates(svc: Services, session: Session, names: list[str], samples: list[Sample],
                      labels: list[str]) -> tuple[Candidate, list[AssessedCandidate]]:
    """Assess each backbone's candidate in turn; returns the winner (``select_candidate``'s rule) and every
    candidate's summary. Only the best so far keeps its embeddings (one matrix per backbone of every sample: at
    100k samples 0.5 GB each), so memory holds two candidates at most, not all."""
    best: Candidate | None = None
    assessed: list[AssessedCandidate] = []
    for name in names:
        candidate = assess_candidate(svc, session, name, samples, labels)
        assessed.append(candidate.summary())
        if best is None or select_candidate([best.summary(), assessed[-1]]).selected == 1:
            best = candidate
        del candidate
    assert best is not None
    return best, assessed


def _train(svc: Services, session: Session, run: TrainingRun, samples: list[Sample], labels: list[str],
           names: list[str], tried: Sequence[AssessedCandidate]) -> None:
    from model.learning.onnx_export import build_classifier  # torch: imported only when training

    winner, assessed = assess_candidates(svc, session, names, samples, labels)
    run.backbone = winner.name
    summaries = merge_candidates(tried, assessed)
    head, calibration = fit_head(winner)
    guards = fit_guards(winner, calibration, svc.settings)
    evaluation = evaluate_candidate(svc, session, winner, head, calibration)
    onnx_model = build_classifier(winner.backbone, weight=head.weight, bias=head.bias, labels=labels,
                                  graphs_dir=svc.settings.backbone_graphs_dir,
                                  metadata={META_TRAINING_RUN: str(run.id), **guards.rules.metadata()},
                                  reference=guards.reference)
    mlflow_run_id, model_uri = log_to_mlflow(svc, run, winner.data, head, evaluation, onnx_model, summaries)
    record_run(session, run, winner, head, evaluation, seed=svc.settings.seed, mlflow_run_id=mlflow_run_id,
               model_uri=model_uri, artifact_sha256=hashlib.sha256(onnx_model.SerializeToString()).hexdigest(),
               candidates=summaries, guards=guards.rules)
