"""A registered champion in seconds: the lite0 backbone with a seeded random head, logged and aliased in MLflow.

For tests that need a model to score with but not a trained one (batch prediction, its DAG). The version has
no Sprout training run behind it, so the API (which verifies artifacts against the database) would refuse it;
the CLI's ``predict`` does not check.
"""

from __future__ import annotations

import numpy as np

from model.core.settings import Settings
from model.learning.backbones import load_backbone
from model.learning.onnx_export import build_classifier
from model.serving.registry import Registry

LABELS = ["dandelion", "grass"]


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
    registry.set_champion(version)
    return version
