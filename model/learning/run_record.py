"""What a training run stores beside its columns (``TrainingRun.params``) and what a training step reports
(``TrainOutcome``, the JSON of ``sprout train``, ``train-candidate``, ``gate`` and ``promote``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from db.models import TrainingRun
from model.learning.candidates import AssessedCandidate
from model.learning.evidence import GateEvidence, Metrics
from model.learning.gate import Decision
from model.serving.guards import Guards


@dataclass(frozen=True)
class RunParams:
    """A run's parameters: only ``warnings`` while it trains; the rest once it succeeded (None until then)."""

    seed: int | None = None
    weight_decay: float | None = None  # the final head's
    model_uri: str | None = None  # the ONNX model logged to MLflow: what promotion registers
    counts: Mapping[str, int] | None = None  # samples per split
    warnings: tuple[str, ...] = ()  # labels left out
    candidates: tuple[AssessedCandidate, ...] | None = None
    evidence: GateEvidence | None = None
    guards: Guards | None = None  # the model's abstain and unfamiliar rules (coverage: /models)
    skipped: Mapping[str, str] | None = None  # candidate backbones this run did not assess, and why

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON: keys of what is not known yet are left out."""
        stored: dict[str, Any] = {
            "seed": self.seed, "weight_decay": self.weight_decay, "model_uri": self.model_uri,
            "counts": None if self.counts is None else dict(self.counts), "warnings": list(self.warnings),
            "candidates": None if self.candidates is None else [c.to_dict() for c in self.candidates],
            "evidence": None if self.evidence is None else self.evidence.to_dict(),
            "guards": None if self.guards is None else self.guards.to_dict(),
            "skipped": None if not self.skipped else dict(self.skipped),
        }
        return {key: value for key, value in stored.items() if value is not None}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> RunParams:
        stored = stored or {}
        counts, candidates, evidence = stored.get("counts"), stored.get("candidates"), stored.get("evidence")
        guards = stored.get("guards")
        return cls(seed=stored.get("seed"), weight_decay=stored.get("weight_decay"),
                   model_uri=stored.get("model_uri"), counts=None if counts is None else dict(counts),
                   warnings=tuple(stored.get("warnings", ())),
                   candidates=None if candidates is None else tuple(AssessedCandidate.from_dict(c)
                                                                    for c in candidates),
                   evidence=None if evidence is None else GateEvidence.from_dict(evidence),
                   guards=None if guards is None else Guards.from_dict(guards),
                   skipped=dict(stored["skipped"]) if stored.get("skipped") else None)


@dataclass(frozen=True)
class TrainOutcome:
    """What a training step did; ``to_dict`` is the CLI's JSON."""

    skipped: bool
    reason: str
    run_id: int | None = None
    mlflow_run_id: str | None = None
    backbone: str | None = None
    labels: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    n_embedded: int = 0
    metrics: Metrics | None = None
    champion_version: str | None = None
    champion_metrics: Metrics | None = None
    gate: Decision | None = None
    version: str | None = None
    promoted: bool = False
    warnings: list[str] = field(default_factory=list)
    candidates: list[AssessedCandidate] = field(default_factory=list)
    skipped_candidates: dict[str, str] = field(default_factory=dict)  # backbone: why this run did not assess it

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped, "reason": self.reason, "run_id": self.run_id,
            "mlflow_run_id": self.mlflow_run_id, "backbone": self.backbone, "labels": list(self.labels),
            "counts": dict(self.counts), "n_embedded": self.n_embedded,
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
            "champion_version": self.champion_version,
            "champion_metrics": None if self.champion_metrics is None else self.champion_metrics.to_dict(),
            "gate": None if self.gate is None else self.gate.to_dict(), "version": self.version,
            "promoted": self.promoted, "warnings": list(self.warnings),
            "candidates": [c.to_dict() for c in self.candidates],
            # only when a run skipped some (a dominated backbone): the JSON of every other run stays as it was
            **({"skipped_candidates": dict(self.skipped_candidates)} if self.skipped_candidates else {}),
        }

    @classmethod
    def from_run(cls, run: TrainingRun) -> TrainOutcome:
        params = RunParams.from_dict(run.params)
        return cls(
            skipped=False, reason=run.gate_reason or run.status.value, run_id=run.id,
            mlflow_run_id=run.mlflow_run_id, backbone=run.backbone, labels=list(run.labels),
            counts=dict(params.counts or {}), n_embedded=run.n_embedded or 0,
            metrics=None if run.metrics is None else Metrics.from_dict(run.metrics),
            champion_version=run.champion_version,
            champion_metrics=None if run.champion_metrics is None else Metrics.from_dict(run.champion_metrics),
            gate=(Decision(bool(run.gate_passed), run.gate_reason or "", params.evidence)
                  if run.gate_passed is not None else None),
            version=run.registered_version, promoted=run.promoted, warnings=list(params.warnings),
            candidates=list(params.candidates or ()), skipped_candidates=dict(params.skipped or {}),
        )
