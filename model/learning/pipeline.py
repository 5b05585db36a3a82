"""The training pipeline: train a candidate on the approved samples, evaluate it, gate it, log it.

``train_candidate`` is a sequence of named steps (gather → embed → fit → evaluate → gate → log → record),
so the CLI, the API and the Airflow DAG get the same run. Promotion lives in ``model.learning.promotion``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from db import queries
from db.models import RunStatus, Sample, Split, TrainingRun, TrainingRunSample, utcnow
from model.learning.embeddings import ImageRef, embed_images, load_cached
from model.learning.evaluation import (
    Calibration,
    CrossValidation,
    Metrics,
    build_evidence,
    calibrate,
    calibrated,
    correct,
    cross_validate,
    cv_log_loss,
    evaluate_probabilities,
)
from model.learning.gate import Decision, GateRule, gate, retrain_due, select_trainable
from model.runtime.services import Services
from model.serving.contract import META_BACKBONE, META_LABELS, META_TRAINING_RUN

if TYPE_CHECKING:
    import onnx

    from model.learning.backbones import LoadedBackbone
    from model.learning.training import Head

log = logging.getLogger(__name__)
EVIDENCE_METRICS = ("cv_accuracy", "cv_log_loss", "cv_macro_f1", "mcnemar_p", "temperature", "ece_before",
                    "ece_after")


def new_approved_count(session: Session) -> int:
    """Approved samples the last successful run did not train or test on."""
    return queries.count_new_approved(session)


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
    warnings: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_run(cls, run: TrainingRun) -> TrainOutcome:
        return cls(
            skipped=False, reason=run.gate_reason or run.status.value, run_id=run.id,
            mlflow_run_id=run.mlflow_run_id, backbone=run.backbone, labels=list(run.labels),
            counts=dict(run.params.get("counts", {})), n_embedded=run.n_embedded or 0, metrics=run.metrics,
            champion_version=run.champion_version, champion_metrics=run.champion_metrics,
            gate=(Decision(bool(run.gate_passed), run.gate_reason or "", run.params.get("evidence"))
                  if run.gate_passed is not None else None),
            version=run.registered_version, promoted=run.promoted, warnings=list(run.params.get("warnings", [])),
            candidates=list(run.params.get("candidates", [])),
        )


@dataclass
class TrainingData:
    """The approved samples of a run with their embeddings, label indices and split masks."""

    samples: list[Sample]
    labels: list[str]
    x: np.ndarray
    y: np.ndarray
    masks: dict[Split, np.ndarray]
    n_embedded: int

    def split(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        return self.x[self.masks[split]], self.y[self.masks[split]]

    @property
    def test_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.split is Split.TEST]

    @property
    def counts(self) -> dict[str, int]:
        return {split.value: int(self.masks[split].sum()) for split in Split}


@dataclass
class Evaluation:
    """A candidate's test metrics, the champion's on the same samples, and the gate's decision (with evidence)."""

    metrics: Metrics
    champion_version: str | None
    champion_metrics: Metrics | None
    decision: Decision


@dataclass
class Candidate:
    """One backbone's candidate: its embeddings and its cross-validation over the train+val samples."""

    backbone: LoadedBackbone
    data: TrainingData
    cv: CrossValidation

    @property
    def name(self) -> str:
        return self.backbone.info.name

    def summary(self) -> dict[str, Any]:
        """The row of the candidates table (run record, MLflow, JSON)."""
        return {"backbone": self.name, "accuracy": self.cv.accuracy, "accuracy_ci": self.cv.accuracy_ci,
                "log_loss": cv_log_loss(self.cv), "folds": self.cv.folds, "weight_decay": self.cv.weight_decay,
                "n_embedded": self.data.n_embedded}


def embed_samples(svc: Services, session: Session, backbone: LoadedBackbone, samples: list[Sample],
                  labels: list[str]) -> TrainingData:
    """Embed the samples (cached per backbone: only new images are computed)."""
    x, n_new = embed_images(session, svc.store, backbone, [ImageRef(s.sha256, s.object_key) for s in samples],
                            batch_size=svc.settings.batch_size, graphs_dir=svc.settings.backbone_graphs_dir)
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[s.label or ""] for s in samples], dtype=np.int64)
    masks = {split: np.array([s.split is split for s in samples], dtype=bool) for split in Split}
    return TrainingData(samples=samples, labels=labels, x=x, y=y, masks=masks, n_embedded=n_new)


def development_set(data: TrainingData) -> tuple[np.ndarray, np.ndarray]:
    """The train+val samples (cross-validation and the final head use them; the test split stays held out)."""
    mask = data.masks[Split.TRAIN] | data.masks[Split.VAL]
    return data.x[mask], data.y[mask]


def assess_candidate(svc: Services, session: Session, backbone_name: str, samples: list[Sample],
                     labels: list[str]) -> Candidate:
    """Embed (cached) and cross-validate one backbone's candidate."""
    from model.learning.backbones import load_backbone  # torch: imported only when training

    backbone = load_backbone(backbone_name, svc.settings)
    data = embed_samples(svc, session, backbone, samples, labels)
    x, y = development_set(data)
    cv = cross_validate(x, y, n_classes=len(labels), seed=svc.settings.seed)
    log.info("candidate %s: cross-validated accuracy %.4f, log loss %.4f", backbone_name, cv.accuracy,
             cv_log_loss(cv))
    return Candidate(backbone=backbone, data=data, cv=cv)


def assess(svc: Services, backbone_name: str) -> dict[str, Any]:
    """One backbone's candidate on all trainable approved samples, cross-validated (no run is recorded): what a
    mapped Airflow task computes, one per backbone, before the selection task trains the winner."""
    with svc.session() as session:
        samples, labels, _ = select_trainable(queries.approved_samples(session))
        return assess_candidate(svc, session, backbone_name, samples, labels).summary()


def select_candidate(candidates: list[Candidate]) -> Candidate:
    """The candidate with the lowest cross-validated log loss (the first listed on a tie)."""
    return min(candidates, key=lambda c: cv_log_loss(c.cv))


def fit_head(candidate: Candidate) -> tuple[Head, Calibration]:
    """The final head of a candidate (see ``final_head``)."""
    x, y = development_set(candidate.data)
    return final_head(candidate.cv, x, y, n_classes=len(candidate.data.labels))


def final_head(cv: CrossValidation, x: np.ndarray, y: np.ndarray, *, n_classes: int) -> tuple[Head, Calibration]:
    """The head on all train+val samples with the decay cross-validation chose, temperature-scaled on the
    out-of-fold logits (the temperature is folded into the weights, so the ONNX graph serves it for free)."""
    from model.learning.training import fit_head_with_decay

    head = fit_head_with_decay(x, y, n_classes=n_classes, weight_decay=cv.weight_decay)
    calibration = calibrate(cv)
    return calibrated(head, calibration.temperature), calibration


def evaluate_champion(
    svc: Services, session: Session, test: list[Sample], *, backbone_name: str, x_test: np.ndarray
) -> tuple[str | None, Metrics | None, np.ndarray | None]:
    """The current champion's metrics and per-sample correctness on exactly these test samples (None without a
    champion).

    The champion's head (read from its ONNX graph) is applied to cached embeddings of its backbone: the
    candidate's when it is the same backbone, else the cache of the champion's own (every run embeds all samples
    with every candidate backbone). Only when some test image has none does the champion's ONNX model classify
    the images themselves.
    """
    from model.learning.training import Head
    from model.serving.onnx_graph import read_head
    from model.serving.predictor import Predictor

    if svc.registry.champion() is None or not test:
        return None, None, None
    info, path = svc.model_file()  # a champion Sprout did not train is no baseline: ArtifactRejectedError
    meta, weight, bias = read_head(path)
    labels = json.loads(meta[META_LABELS])
    champion_backbone = meta.get(META_BACKBONE)
    features: np.ndarray | None = x_test if champion_backbone == backbone_name else None
    if features is None and champion_backbone:
        cached = load_cached(session, champion_backbone, [s.sha256 for s in test])
        if len(cached) == len({s.sha256 for s in test}):
            features = np.stack([cached[s.sha256] for s in test])
    if features is not None and weight.shape[1] == features.shape[1]:
        proba = Head(weight=weight, bias=bias, weight_decay=0.0, val_log_loss=None).predict_proba(features)
    else:
        predictor = Predictor.load(path, version=info.version)
        proba = np.concatenate([predictor.predict_arrays(predictor.preprocess(svc.store.get(s.object_key))[None])
                                for s in test])
    y_test = [s.label or "" for s in test]
    return info.version, evaluate_probabilities(y_test, proba, labels), correct(y_test, proba, labels)


def evaluate_candidate(svc: Services, session: Session, candidate: Candidate, head: Head,
                       calibration: Calibration) -> Evaluation:
    """Test metrics of the candidate and of the champion on the same samples, the evidence, the gate's decision."""
    data = candidate.data
    test = data.test_samples
    x_test, _ = data.split(Split.TEST)
    champion = evaluate_champion(svc, session, test, backbone_name=candidate.name, x_test=x_test)
    evaluation = judge(candidate.cv, calibration, head, x_test, [s.label or "" for s in test], data.labels,
                       champion, GateRule.from_settings(svc.settings))
    log.info("gate %s: %s", "passed" if evaluation.decision.passed else "refused", evaluation.decision.reason)
    return evaluation


def judge(cv: CrossValidation, calibration: Calibration, head: Head, x_test: np.ndarray, y_test: list[str],
          labels: list[str], champion: tuple[str | None, Metrics | None, np.ndarray | None],
          rule: GateRule) -> Evaluation:
    """The gate on a candidate's evidence: its cross-validation, its test predictions, and the champion's
    ``(version, metrics, per-sample correctness)`` on the same test samples."""
    proba = head.predict_proba(x_test)
    metrics = evaluate_probabilities(y_test, proba, labels)
    champion_version, champion_metrics, champion_correct = champion
    evidence = build_evidence(cv=cv, calibration=calibration, y_test=y_test, candidate_metrics=metrics,
                              candidate_correct=correct(y_test, proba, labels), champion_version=champion_version,
                              champion_metrics=champion_metrics, champion_correct=champion_correct)
    evidence["rule"] = asdict(rule)
    return Evaluation(metrics, champion_version, champion_metrics, gate(evidence, rule))


def log_to_mlflow(svc: Services, run: TrainingRun, data: TrainingData, head: Head, evaluation: Evaluation,
                  onnx_model: onnx.ModelProto, candidates: list[dict[str, Any]]) -> tuple[str, str]:
    """One MLflow run: parameters, metrics, the evaluation and its evidence, the candidates table, the confusion
    matrix and the ONNX model. Returns ``(mlflow_run_id, model_uri)``.
    """
    counts = data.counts
    evidence = evaluation.decision.evidence or {}
    with svc.registry.start_run(run_name=f"sprout-run-{run.id}") as mlflow_run:
        mlflow_run.log_params({
            "backbone": run.backbone, "labels": ",".join(data.labels), "seed": svc.settings.seed,
            "weight_decay": head.weight_decay, "n_train": counts["train"], "n_val": counts["val"],
            "n_test": counts["test"], "n_embedded": data.n_embedded, "sprout_run_id": run.id,
            "champion_version": evaluation.champion_version or "none",
            "candidate_backbones": ",".join(c["backbone"] for c in candidates)})
        flat = flat_metrics("test", evaluation.metrics)
        if evaluation.champion_metrics:
            flat.update(flat_metrics("champion_test", evaluation.champion_metrics))
        flat.update({name: float(evidence[name]) for name in EVIDENCE_METRICS if evidence.get(name) is not None})
        mlflow_run.log_metrics(flat)
        mlflow_run.log_dict({"candidate": evaluation.metrics, "champion": evaluation.champion_metrics,
                             "gate": evaluation.decision.as_dict()}, "evaluation.json")
        columns = ("backbone", "accuracy", "log_loss", "folds", "weight_decay")
        mlflow_run.log_table({column: [c.get(column) for c in candidates] for column in columns}, "candidates.json")
        mlflow_run.log_image(confusion_image(evaluation.metrics["confusion_matrix"], f"run {run.id} test set"),
                             "confusion_matrix.png")
        mlflow_run.set_tags({"sprout.gate_passed": str(evaluation.decision.passed),
                             "sprout.gate_reason": evaluation.decision.reason})
        model_uri = mlflow_run.log_onnx(onnx_model)
    return mlflow_run.run_id, model_uri


def record_run(session: Session, run: TrainingRun, winner: Candidate, head: Head, evaluation: Evaluation, *,
               seed: int, mlflow_run_id: str, model_uri: str, artifact_sha256: str,
               candidates: list[dict[str, Any]]) -> None:
    """Store the outcome, the gate's decision with its evidence, the candidates, the out-of-fold probabilities
    and the lineage (which sample, split and label) with the run."""
    data = winner.data
    run.mlflow_run_id, run.artifact_sha256 = mlflow_run_id, artifact_sha256
    development = [s.id for s, keep in zip(data.samples, data.masks[Split.TRAIN] | data.masks[Split.VAL],
                                           strict=True) if keep]
    run.params = {"seed": seed, "weight_decay": head.weight_decay, "model_uri": model_uri,
                  "counts": data.counts, "warnings": list(run.params.get("warnings", [])),
                  "candidates": candidates, "evidence": evaluation.decision.evidence}
    run.out_of_fold = {"sample_ids": development, "labels": list(data.labels),
                       "proba": np.round(winner.cv.proba, 6).tolist()}
    run.metrics, run.champion_version = evaluation.metrics, evaluation.champion_version
    run.champion_metrics = evaluation.champion_metrics
    run.gate_passed, run.gate_reason = evaluation.decision.passed, evaluation.decision.reason
    run.n_embedded = sum(int(c.get("n_embedded") or 0) for c in candidates)
    run.samples = [TrainingRunSample(sample_id=s.id, split=s.split, label=s.label or "") for s in data.samples]
    run.status, run.finished_at = RunStatus.SUCCEEDED, utcnow()
    session.commit()


def train_candidate(svc: Services, *, force: bool = False, backbone_name: str | None = None,
                    trigger_key: str | None = None, tried: list[dict[str, Any]] | None = None) -> TrainOutcome:
    """Train a candidate per backbone (``backbone_name`` or ``SPROUT_CANDIDATE_BACKBONES``) on all approved
    samples, keep the one with the best cross-validated log loss, evaluate and gate it, log it to MLflow;
    register nothing.

    Skipped (no run recorded) unless enough samples were approved since the last run or ``force``.
    With ``trigger_key`` (e.g. an Airflow run id) a retry returns the run that key already produced.
    ``tried``: the summaries of candidates assessed elsewhere (the DAG's mapped tasks), recorded with the run
    beside ``backbone_name``, their winner.
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
        log.info("retrain due? %s", due.reason)
        if not due.passed:
            return TrainOutcome(skipped=True, reason=due.reason)
        samples, labels, warnings = select_trainable(queries.approved_samples(session))
        run = TrainingRun(backbone=names[0], labels=labels, status=RunStatus.RUNNING, trigger_key=trigger_key,
                          params={"warnings": warnings})
        session.add(run)
        session.commit()
        try:
            _train(svc, session, run, samples, labels, names, tried or [])
        except BaseException as exc:
            session.rollback()
            run.status, run.finished_at = RunStatus.FAILED, utcnow()
            run.error = "".join(traceback.format_exception_only(exc)).strip()
            run.trigger_key = None
            session.commit()
            raise
        return TrainOutcome.from_run(run)


def merge_candidates(tried: list[dict[str, Any]], here: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The candidates a run tried: those assessed elsewhere (the DAG's mapped tasks), each replaced by the one
    trained here for the same backbone, whose ``n_embedded`` adds the assessment's (the embedding work of the
    run); then those only trained here."""
    fresh = {c["backbone"]: c for c in here}
    merged = []
    for other in tried:
        mine = fresh.pop(other["backbone"], None)
        merged.append(other if mine is None else
                      mine | {"n_embedded": int(mine.get("n_embedded") or 0) + int(other.get("n_embedded") or 0)})
    return merged + list(fresh.values())


def _train(svc: Services, session: Session, run: TrainingRun, samples: list[Sample], labels: list[str],
           names: list[str], tried: list[dict[str, Any]]) -> None:
    from model.learning.onnx_export import build_classifier  # torch: imported only when training

    candidates = [assess_candidate(svc, session, name, samples, labels) for name in names]
    winner = select_candidate(candidates)
    run.backbone = winner.name
    summaries = merge_candidates(tried, [c.summary() for c in candidates])
    head, calibration = fit_head(winner)
    evaluation = evaluate_candidate(svc, session, winner, head, calibration)
    onnx_model = build_classifier(winner.backbone, weight=head.weight, bias=head.bias, labels=labels,
                                  graphs_dir=svc.settings.backbone_graphs_dir,
                                  metadata={META_TRAINING_RUN: str(run.id)})
    mlflow_run_id, model_uri = log_to_mlflow(svc, run, winner.data, head, evaluation, onnx_model, summaries)
    record_run(session, run, winner, head, evaluation, seed=svc.settings.seed, mlflow_run_id=mlflow_run_id,
               model_uri=model_uri, artifact_sha256=hashlib.sha256(onnx_model.SerializeToString()).hexdigest(),
               candidates=summaries)


def flat_metrics(prefix: str, metrics: Metrics) -> dict[str, float]:
    """MLflow metric names: ``<prefix>_accuracy``, ``<prefix>_recall_<label>``, …"""
    flat = {f"{prefix}_{k}": float(metrics[k]) for k in ("accuracy", "macro_f1", "log_loss")
            if metrics.get(k) is not None}
    for label, values in metrics["per_class"].items():
        for name in ("precision", "recall", "f1"):
            flat[f"{prefix}_{name}_{label}"] = float(values[name])
    return flat


def confusion_image(confusion: dict[str, Any], title: str) -> np.ndarray:
    """The confusion matrix drawn as an RGB array (for MLflow's ``log_image``): rows true, columns predicted,
    cells shaded by their share of the row. Drawn with Pillow, already loaded: a plotting library would add a
    second to every run's start."""
    from PIL import Image, ImageDraw, ImageFont

    labels, matrix = [str(label)[:18] for label in confusion["labels"]], np.asarray(confusion["matrix"])
    font = ImageFont.load_default(size=14)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max([int(draw.textlength(label, font=font)) for label in labels] + [40])
    cell, pad = 56, 12
    left, top = pad + label_width + pad + 20, 3 * pad + 20
    width = max(left + cell * len(labels) + pad, int(draw.textlength(title, font=font)) + 2 * pad)
    height = top + cell * len(labels) + pad + label_width + 28
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, fill="black", font=font)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    for (i, j), value in np.ndenumerate(matrix):
        x, y, green = left + j * cell, top + i * cell, float(share[i, j])
        fill = (int(247 - 200 * green), int(252 - 110 * green), int(245 - 200 * green))
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=fill, outline="grey")
        draw.text((x + cell / 2, y + cell / 2), str(value), fill="white" if green > 0.6 else "black", font=font,
                  anchor="mm")
    for k, label in enumerate(labels):
        draw.text((left - pad, top + k * cell + cell / 2), label, fill="black", font=font, anchor="rm")
        column = Image.new("RGBA", (label_width + 4, 20), (255, 255, 255, 0))
        ImageDraw.Draw(column).text((label_width + 2, 10), label, fill="black", font=font, anchor="rm")
        rotated = column.rotate(90, expand=True)
        image.paste(rotated, (left + k * cell + cell // 2 - 10, top + cell * len(labels) + 4), rotated)
    draw.text((pad, top - 4), "true", fill="grey", font=font, anchor="ld")
    draw.text((left + cell * len(labels), height - 6), "predicted", fill="grey", font=font, anchor="rd")
    return np.asarray(image)
