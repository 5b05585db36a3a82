"""Record a trained candidate: one MLflow run (parameters, metrics, evidence, candidates, confusion matrix, the
ONNX model) and the run's database record (outcome, gate decision, out-of-fold probabilities, lineage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from db.models import RunStatus, TrainingRun, TrainingRunSample, utcnow
from model.data.class_balance import class_balance, count_per_split
from model.learning.assessment import Candidate
from model.learning.candidates import AssessedCandidate
from model.learning.confusion_image import confusion_image
from model.learning.evidence import GateEvidence, Metrics
from model.learning.final_evaluation import Evaluation
from model.learning.label_evidence import label_evidence
from model.learning.run_record import RunParams
from model.learning.training_data import TrainingData
from model.runtime.services import Services
from model.serving.guards import Guards

if TYPE_CHECKING:
    import onnx

    from model.learning.training import Head

CANDIDATE_COLUMNS = ("backbone", "accuracy", "log_loss", "folds", "weight_decay")


def log_to_mlflow(svc: Services, run: TrainingRun, data: TrainingData, head: Head, evaluation: Evaluation,
                  onnx_model: onnx.ModelProto, candidates: list[AssessedCandidate]) -> tuple[str, str]:
    """One MLflow run: parameters, metrics, the evaluation and its evidence, the candidates table, the class
    balance and the run's warnings, the confusion matrix and the ONNX model. Returns ``(mlflow_run_id, model_uri)``.
    """
    counts = data.counts
    with svc.registry.start_run(run_name=f"sprout-run-{run.id}") as mlflow_run:
        mlflow_run.log_params({
            "backbone": run.backbone, "labels": ",".join(data.labels), "seed": svc.settings.seed,
            "weight_decay": head.weight_decay, "n_train": counts["train"], "n_val": counts["val"],
            "n_test": counts["test"], "n_embedded": data.n_embedded, "sprout_run_id": run.id,
            "champion_version": evaluation.champion_version or "none",
            "candidate_backbones": ",".join(c.backbone for c in candidates),
            **({"skipped_candidates": ",".join(skipped)} if (skipped := RunParams.from_dict(run.params).skipped)
               else {})})
        flat = flat_metrics("test", evaluation.metrics)
        if evaluation.champion_metrics is not None:
            flat.update(flat_metrics("champion_test", evaluation.champion_metrics))
        if evaluation.decision.evidence is not None:
            flat.update(evidence_metrics(evaluation.decision.evidence))
        mlflow_run.log_metrics(flat)
        mlflow_run.log_dict({"candidate": evaluation.metrics.to_dict(),
                             "champion": (evaluation.champion_metrics.to_dict()
                                          if evaluation.champion_metrics is not None else None),
                             "gate": evaluation.decision.to_dict()}, "evaluation.json")
        mlflow_run.log_dict(class_balance(count_per_split(data.samples),
                                          min_ratio=svc.settings.imbalance_min_ratio).to_dict(), "class_balance.json")
        mlflow_run.log_dict({"warnings": list(RunParams.from_dict(run.params).warnings)}, "warnings.json")
        rows = [c.to_dict() for c in candidates]
        mlflow_run.log_table({column: [row[column] for row in rows] for column in CANDIDATE_COLUMNS},
                             "candidates.json")
        mlflow_run.log_image(confusion_image(evaluation.metrics.confusion_matrix, f"run {run.id} test set"),
                             "confusion_matrix.png")
        mlflow_run.set_tags({"sprout.gate_passed": str(evaluation.decision.passed),
                             "sprout.gate_reason": evaluation.decision.reason})
        model_uri = mlflow_run.log_onnx(onnx_model)
    return mlflow_run.run_id, model_uri


def flat_metrics(prefix: str, metrics: Metrics) -> dict[str, float]:
    """MLflow metric names: ``<prefix>_accuracy``, ``<prefix>_recall_<label>``, …"""
    overall = {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1, "log_loss": metrics.log_loss}
    flat = {f"{prefix}_{name}": float(value) for name, value in overall.items() if value is not None}
    for label, values in metrics.per_class.items():
        flat.update({f"{prefix}_precision_{label}": float(values.precision),
                     f"{prefix}_recall_{label}": float(values.recall), f"{prefix}_f1_{label}": float(values.f1)})
    return flat


def evidence_metrics(evidence: GateEvidence) -> dict[str, float]:
    """The evidence's numbers that MLflow charts: cross-validation, McNemar's p, the calibration."""
    numbers = {"cv_accuracy": evidence.cv_accuracy, "cv_log_loss": evidence.cv_log_loss,
               "cv_macro_f1": evidence.cv_macro_f1, "mcnemar_p": evidence.mcnemar_p,
               "temperature": evidence.temperature, "ece_before": evidence.ece_before,
               "ece_after": evidence.ece_after}
    return {name: float(value) for name, value in numbers.items() if value is not None}


def record_run(session: Session, run: TrainingRun, winner: Candidate, head: Head, evaluation: Evaluation, *,
               seed: int, mlflow_run_id: str, model_uri: str, artifact_sha256: str,
               candidates: list[AssessedCandidate], guards: Guards | None = None) -> None:
    """Store the outcome, the gate's decision with its evidence, the candidates, the model's abstain and
    unfamiliar rules, the out-of-fold probabilities and the lineage (which sample, split and label) with the run."""
    data = winner.data
    run.mlflow_run_id, run.artifact_sha256 = mlflow_run_id, artifact_sha256
    run.params = RunParams(seed=seed, weight_decay=head.weight_decay, model_uri=model_uri, counts=data.counts,
                           warnings=RunParams.from_dict(run.params).warnings, candidates=tuple(candidates),
                           evidence=evaluation.decision.evidence, guards=guards,
                           skipped=RunParams.from_dict(run.params).skipped).to_dict()
    temperature = evaluation.decision.evidence.temperature if evaluation.decision.evidence is not None else 1.0
    run.out_of_fold = label_evidence(data, winner.cv, head, temperature=temperature).to_dict()
    run.metrics = evaluation.metrics.to_dict()
    run.champion_version = evaluation.champion_version
    run.champion_metrics = evaluation.champion_metrics.to_dict() if evaluation.champion_metrics is not None else None
    run.gate_passed, run.gate_reason = evaluation.decision.passed, evaluation.decision.reason
    run.n_embedded = sum(c.n_embedded for c in candidates)
    run.samples = [TrainingRunSample(sample_id=s.id, split=s.split, label=s.label or "") for s in data.samples]
    run.status, run.finished_at = RunStatus.SUCCEEDED, utcnow()
    session.commit()
