"""A registered champion in seconds: the lite0 backbone with a seeded random head, logged and aliased in MLflow.

For tests that need a model to score with but not a trained one (batch prediction, its DAG). It is recorded as a
Sprout training run with its artifact's sha256, as training records it, so the API and the CLI (which verify
what they load against the database) accept it.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from sqlalchemy.orm import Session

from db.models import RunStatus, TrainingRun
from model.core.settings import Settings
from model.learning.backbones import load_backbone
from model.learning.onnx_export import build_classifier
from model.runtime.services import Services
from model.serving.registry import Registry

LABELS = ["dandelion", "grass"]


def record_training_run(session: Session, version: str, model: onnx.ModelProto, *, digest: str | None = None,
                        labels: list[str] = LABELS) -> None:
    """The run row a promotion writes for ``version``: its artifact's sha256 (or ``digest``, to fake a swap)."""
    session.add(TrainingRun(backbone="efficientnet_lite0", labels=labels, status=RunStatus.SUCCEEDED,
                            registered_version=version, promoted=True, gate_passed=True, gate_reason="test",
                            artifact_sha256=digest or hashlib.sha256(model.SerializeToString()).hexdigest()))
    session.commit()


def register_random_champion(settings: Settings, *, labels: list[str] = LABELS, seed: int = 0) -> str:
    """Register a lite0 classifier with a random (unsaturated) head as the champion; returns its version."""
    backbone = load_backbone("efficientnet_lite0", settings)
    rng = np.random.default_rng(seed)
    model = build_classifier(backbone, weight=rng.normal(0, 0.05, (len(labels), backbone.dim)).astype(np.float32),
                             bias=np.zeros(len(labels), np.float32), labels=labels,
                             graphs_dir=settings.backbone_graphs_dir)
    registry = Registry.from_settings(settings)
    with registry.start_run("test-champion") as run:
        uri = run.log_onnx(model)
    version = registry.register(uri, run.run_id)
    svc = Services.from_settings(settings)
    try:
        with svc.session() as session:
            record_training_run(session, version, model, labels=labels)
    finally:
        svc.close()
    registry.set_champion(version)
    return version
