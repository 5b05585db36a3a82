"""The training pipeline: train a candidate, gate it against the champion, promote it, roll back.

Each step is a separate function so the CLI, the API and the Airflow DAG can call them one by one.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import RunStatus, Sample, SampleStatus, Split, TrainingRun, TrainingRunSample, utcnow
from model.embeddings import ImageRef, embed_images
from model.errors import ConflictError, NotEnoughDataError, NotFoundError
from model.evaluation import evaluate_probabilities
from model.gate import Decision, gate, retrain_due
from model.services import Services

log = logging.getLogger(__name__)


def last_run(session: Session) -> TrainingRun | None:
    """The most recent training run that finished (succeeded)."""
    return session.scalar(
        select(TrainingRun).where(TrainingRun.status == RunStatus.SUCCEEDED).order_by(TrainingRun.id.desc())
    )


def new_approved_count(session: Session) -> int:
    """Approved samples the last successful run did not train or test on."""
    query = select(func.count(Sample.id)).where(Sample.status == SampleStatus.APPROVED)
    run = last_run(session)
    if run is not None:
        seen = select(TrainingRunSample.sample_id).where(TrainingRunSample.run_id == run.id)
        query = query.where(Sample.id.not_in(seen))
    return int(session.scalar(query) or 0)


@dataclass
class TrainOutcome:
    """What a training step did; ``as_dict`` is the CLI's JSON."""

    skipped: bool
    reason: str
    run_id: int | None = None
    mlflow_run_id: str | None = None
    backbone: str | None = None
    labels: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    n_embedded: int = 0
    metrics: dict[str, Any] | None = None
    champion_version: str | None = None
    champion_metrics: dict[str, Any] | None = None
    gate: Decision | None = None
    version: str | None = None
    promoted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped, "reason": self.reason, "run_id": self.run_id,
            "mlflow_run_id": self.mlflow_run_id, "backbone": self.backbone, "labels": self.labels,
            "counts": self.counts, "n_embedded": self.n_embedded, "metrics": self.metrics,
            "champion_version": self.champion_version, "champion_metrics": self.champion_metrics,
            "gate": self.gate.as_dict() if self.gate else None, "version": self.version,
            "promoted": self.promoted,
        }

    @classmethod
    def from_run(cls, run: TrainingRun) -> TrainOutcome:
        return cls(
            skipped=False, reason=run.gate_reason or run.status.value, run_id=run.id,
            mlflow_run_id=run.mlflow_run_id, backbone=run.backbone, labels=list(run.labels),
            counts=dict(run.params.get("counts", {})), n_embedded=run.n_embedded or 0, metrics=run.metrics,
            champion_version=run.champion_version, champion_metrics=run.champion_metrics,
            gate=Decision(bool(run.gate_passed), run.gate_reason or "") if run.gate_passed is not None else None,
            version=run.registered_version, promoted=run.promoted,
        )


def _approved(session: Session) -> list[Sample]:
    return list(session.scalars(select(Sample).where(Sample.status == SampleStatus.APPROVED).order_by(Sample.id)))


def _confusion_png(confusion: dict[str, Any], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = confusion["labels"], np.asarray(confusion["matrix"])
    size = 1.2 + 0.6 * len(labels)
    fig, ax = plt.subplots(figsize=(max(4, size), max(3.5, size)))
    ax.imshow(matrix, cmap="Greens")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _flat_metrics(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    flat = {f"{prefix}_{k}": float(metrics[k]) for k in ("accuracy", "macro_f1", "log_loss")
            if metrics.get(k) is not None}
    for label, values in metrics["per_class"].items():
        for name in ("precision", "recall", "f1"):
            flat[f"{prefix}_{name}_{label}"] = float(values[name])
    return flat


def evaluate_champion(
    svc: Services, test: list[Sample], *, backbone_name: str, x_test: np.ndarray
) -> tuple[str | None, dict[str, Any] | None]:
    """The current champion's metrics on exactly these test samples (None without a champion).

    When the champion uses the same backbone, its head (read from the ONNX graph) is applied to the
    cached embeddings; otherwise the champion's ONNX model classifies the images themselves.
    """
    from model.export import read_head
    from model.predictor import Predictor
    from model.training import Head

    if svc.registry.champion() is None or not test:
        return None, None
    info, path = svc.registry.model_file()
    meta, weight, bias = read_head(path)
    labels = json.loads(meta["sprout.labels"])
    if meta.get("sprout.backbone") == backbone_name and weight.shape[1] == x_test.shape[1]:
        proba = Head(weight=weight, bias=bias, weight_decay=0.0, val_log_loss=None).predict_proba(x_test)
    else:
        predictor = Predictor.load(path, version=info.version)
        proba = np.concatenate([predictor.predict_arrays(predictor.preprocess(svc.store.get(s.object_key))[None])
                                for s in test])
    return info.version, evaluate_probabilities([s.label or "" for s in test], proba, labels)


def train_candidate(svc: Services, *, force: bool = False, backbone_name: str | None = None,
                    trigger_key: str | None = None) -> TrainOutcome:
    """Train and evaluate a candidate on all approved samples; log it to MLflow, register nothing.

    Skipped (no run recorded) unless enough samples were approved since the last run or ``force``.
    With ``trigger_key`` (e.g. an Airflow run id) a retry returns the run that key already produced.
    """
    settings = svc.settings
    backbone_name = backbone_name or settings.backbone
    with svc.session() as session:
        if trigger_key is not None:
            done = session.scalar(select(TrainingRun).where(TrainingRun.trigger_key == trigger_key))
            if done is not None and done.status is RunStatus.SUCCEEDED:
                log.info("run %s already trained a candidate for %s", done.id, trigger_key)
                return TrainOutcome.from_run(done)
            if done is not None:  # a failed or interrupted attempt: this retry takes the key over
                done.trigger_key = None
                session.commit()
        due = retrain_due(new_approved=new_approved_count(session), min_new=settings.min_new_samples,
                          force=force)
        log.info("retrain due? %s", due.reason)
        if not due.passed:
            return TrainOutcome(skipped=True, reason=due.reason)
        samples = _approved(session)
        labels = sorted({s.label for s in samples if s.label})
        train_labels = {s.label for s in samples if s.split is Split.TRAIN}
        if len(labels) < 2 or train_labels != set(labels):
            raise NotEnoughDataError(
                f"Need at least two labels, each with training samples; have {dict(Counter(s.label for s in samples))}"
            )
        run = TrainingRun(backbone=backbone_name, labels=labels, status=RunStatus.RUNNING, trigger_key=trigger_key)
        session.add(run)
        session.commit()
        try:
            outcome = _train(svc, session, run, samples, labels)
        except BaseException as exc:
            session.rollback()
            run.status, run.error, run.finished_at = RunStatus.FAILED, "".join(
                traceback.format_exception_only(exc)).strip(), utcnow()
            run.trigger_key = None
            session.commit()
            raise
        return outcome


def _train(svc: Services, session: Session, run: TrainingRun, samples: list[Sample],
           labels: list[str]) -> TrainOutcome:
    from model.backbones import load_backbone  # torch: imported only when training
    from model.export import build_classifier
    from model.training import train_head

    settings = svc.settings
    backbone = load_backbone(run.backbone, settings)
    x, n_new = embed_images(session, svc.store, backbone, [ImageRef(s.sha256, s.object_key) for s in samples],
                            batch_size=settings.batch_size)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[s.label] for s in samples if s.label], dtype=np.int64)
    masks = {split: np.array([s.split is split for s in samples], dtype=bool) for split in Split}
    head = train_head(x[masks[Split.TRAIN]], y[masks[Split.TRAIN]], x[masks[Split.VAL]], y[masks[Split.VAL]],
                      n_classes=len(labels), seed=settings.seed, device=backbone.device)
    test = [s for s in samples if s.split is Split.TEST]
    metrics = evaluate_probabilities([s.label or "" for s in test], head.predict_proba(x[masks[Split.TEST]]), labels)
    champion_version, champion_metrics = evaluate_champion(svc, test, backbone_name=run.backbone,
                                                           x_test=x[masks[Split.TEST]])
    decision = gate(candidate_accuracy=metrics["accuracy"], min_accuracy=settings.gate_min_accuracy,
                    champion_accuracy=champion_metrics["accuracy"] if champion_metrics else None, n_test=len(test))
    log.info("gate %s: %s", "passed" if decision.passed else "refused", decision.reason)
    counts = {split.value: int(masks[split].sum()) for split in Split}
    onnx_model = build_classifier(backbone, weight=head.weight, bias=head.bias, labels=labels,
                                  cache_dir=settings.cache_dir, metadata={"sprout.training_run": str(run.id)})
    with svc.registry.start_run(run_name=f"sprout-run-{run.id}") as mlflow_run_id:
        import mlflow

        mlflow.log_params({"backbone": run.backbone, "labels": ",".join(labels), "seed": settings.seed,
                           "weight_decay": head.weight_decay, "n_train": counts["train"], "n_val": counts["val"],
                           "n_test": counts["test"], "n_embedded": n_new, "sprout_run_id": run.id,
                           "champion_version": champion_version or "none"})
        flat = _flat_metrics("test", metrics)
        if champion_metrics:
            flat.update(_flat_metrics("champion_test", champion_metrics))
        mlflow.log_metrics(flat)
        mlflow.log_dict({"candidate": metrics, "champion": champion_metrics, "gate": decision.as_dict()},
                        "evaluation.json")
        mlflow.log_image(_png_array(_confusion_png(metrics["confusion_matrix"], f"run {run.id} test set")),
                         "confusion_matrix.png")
        mlflow.set_tags({"sprout.gate_passed": str(decision.passed), "sprout.gate_reason": decision.reason})
        model_uri = svc.registry.log_onnx(onnx_model)
    run.mlflow_run_id = mlflow_run_id
    run.params = {"seed": settings.seed, "weight_decay": head.weight_decay, "model_uri": model_uri,
                  "counts": counts, "val_log_loss": head.val_log_loss}
    run.metrics, run.champion_version, run.champion_metrics = metrics, champion_version, champion_metrics
    run.gate_passed, run.gate_reason, run.n_embedded = decision.passed, decision.reason, n_new
    run.samples = [TrainingRunSample(sample_id=s.id, split=s.split, label=s.label or "") for s in samples]
    run.status, run.finished_at = RunStatus.SUCCEEDED, utcnow()
    session.commit()
    return TrainOutcome.from_run(run)


def _png_array(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def get_run(session: Session, run_id: int | None) -> TrainingRun:
    """A training run by id, or the latest one."""
    run = session.get(TrainingRun, run_id) if run_id is not None else session.scalar(
        select(TrainingRun).order_by(TrainingRun.id.desc()))
    if run is None:
        raise NotFoundError(f"Training run {run_id if run_id is not None else '(latest)'} not found.")
    return run


def promote_run(svc: Services, run_id: int | None = None) -> TrainOutcome:
    """Register a gate-passed candidate and point ``champion`` at it. Safe to repeat."""
    with svc.session() as session:
        run = get_run(session, run_id)
        if run.status is not RunStatus.SUCCEEDED or not run.gate_passed:
            raise ConflictError(f"Run {run.id} did not pass the gate: {run.gate_reason or run.status.value}")
        if run.registered_version is None:
            run.registered_version = svc.registry.register(run.params["model_uri"], run.mlflow_run_id or "")
            session.commit()
        svc.registry.set_champion(run.registered_version)
        run.promoted = True
        session.commit()
        log.info("promoted run %s as version %s", run.id, run.registered_version)
        return TrainOutcome.from_run(run)


def gate_decision(svc: Services, run_id: int | None = None) -> TrainOutcome:
    """The stored outcome of a candidate run, with its gate decision (for the DAG's branch)."""
    with svc.session() as session:
        return TrainOutcome.from_run(get_run(session, run_id))


def retrain_check(svc: Services, *, trigger_key: str | None = None) -> dict[str, Any]:
    """How many samples were approved since the last run, and whether that is enough to retrain.

    With ``trigger_key``: a run that key already trained counts as due, so a cleared DAG run goes on
    to the gate and promotion of its candidate instead of stopping at "0 new samples".
    """
    with svc.session() as session:
        new = new_approved_count(session)
        done = (session.scalar(select(TrainingRun).where(TrainingRun.trigger_key == trigger_key,
                                                         TrainingRun.status == RunStatus.SUCCEEDED))
                if trigger_key else None)
    if done is not None:
        return {"new_approved": new, "min_new_samples": svc.settings.min_new_samples, "due": True,
                "reason": f"run {done.id} already trained a candidate for {trigger_key}"}
    due = retrain_due(new_approved=new, min_new=svc.settings.min_new_samples)
    return {"new_approved": new, "min_new_samples": svc.settings.min_new_samples, "due": due.passed,
            "reason": due.reason}


def train(svc: Services, *, force: bool = False, backbone_name: str | None = None) -> TrainOutcome:
    """Train a candidate and promote it if the gate passes."""
    outcome = train_candidate(svc, force=force, backbone_name=backbone_name)
    if outcome.skipped or not outcome.gate or not outcome.gate.passed:
        return outcome
    return promote_run(svc, outcome.run_id)


def rollback(svc: Services, version: str | None = None) -> dict[str, Any]:
    """Move ``champion`` to ``version`` or, by default, to the version promoted before the current one."""
    current = svc.registry.champion()
    if version is None:
        if current is None:
            raise NotFoundError("No champion to roll back from.")
        older = [v for v in svc.registry.versions() if int(v.version) < int(current.version)]
        if not older:
            raise NotFoundError(f"Version {current.version} is the first version; nothing to roll back to.")
        version = older[-1].version
    svc.registry.set_champion(str(version))
    log.info("champion moved from %s to %s", current.version if current else None, version)
    return {"previous": current.version if current else None, "champion": str(version)}
