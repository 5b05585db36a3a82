"""Settings of training and the evidence gate (``SPROUT_*``): part of the one ``Settings`` object."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class TrainingSettings(BaseModel):
    """Backbones, the retrain's levers and the evidence gate."""

    backbone: str = Field(
        default="efficientnet_lite0",
        description="The backbone when `SPROUT_CANDIDATE_BACKBONES` is empty.")
    backbone_graphs: Path | None = Field(
        default=None,
        description="Where each backbone's ONNX graph is exported once (from torch) and kept (default: "
                    "`SPROUT_HOME/cache/backbones`); a file is named by its weights' digest and written "
                    "atomically, so homes and workers may share the directory. On a CPU, training embeds "
                    "through it with ONNX Runtime: a retrain whose images are cached never imports torch.")
    dinov2_model: str = Field(
        default="facebook/dinov2-small",
        description="Where the `dinov2-small` backbone loads from: a hub id or a local directory.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="`auto` (CUDA when present; without an NVIDIA driver it is the CPU, decided without "
                    "importing torch), `cpu` or `cuda`.")
    batch_size: int = Field(default=32, ge=1, description="Embedding batch size.")
    seed: int = Field(default=0, description="Training seed.")

    candidate_backbones: str = Field(
        default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2",
        description="Backbones a run trains a candidate for (comma-separated); the lowest cross-validated log "
                    "loss wins.")
    decay_search_samples: int = Field(
        default=10_000, ge=0,
        description="Cross-validation chooses each fold's weight decay on at most this many of the fold's "
                    "training samples (a seeded subsample stratified by label), then fits the fold's head with "
                    "that decay on all of them; the final head is fitted on all train+val samples too. 0: search "
                    "on all (at 100k samples a retrain takes several times longer; see docs/benchmarks.md).")
    training_workers: int = Field(
        default=2, ge=1,
        description="Cross-validation folds fitted side by side (threads); each holds a copy of its fold's "
                    "embeddings, so memory grows with it.")
    candidate_dominance_runs: int = Field(
        default=3, ge=0,
        description="When one backbone of `SPROUT_CANDIDATE_BACKBONES` won each of the last this many runs that "
                    "assessed all of them, each time by at least `SPROUT_CANDIDATE_DOMINANCE_MARGIN`, a run "
                    "assesses only it (the run records the others as skipped and why); after this many such runs "
                    "in a row, a run assesses all again. 0: every run assesses all.")
    candidate_dominance_margin: float = Field(
        default=0.05, ge=0.0,
        description="The cross-validated log loss (nats) by which the dominant backbone must beat every other "
                    "candidate in each of those runs.")
    gate_min_accuracy: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="An absolute floor, opt-in: the cross-validated accuracy must reach it (and the test interval's "
                    "upper bound must not be below it). Unset, a candidate must clearly beat the trivial baseline "
                    "(the commonest label's share; chance for a balanced set) and, once a champion exists, not be "
                    "worse than it; a fixed floor means different things for 2 labels and for 10.")
    gate_max_regression: float = Field(
        default=0.02, ge=0.0, le=1.0,
        description="Largest tolerated drop against the champion in test accuracy or a class's recall (never "
                    "less than one test image).")
    gate_alpha: float = Field(
        default=0.05, gt=0.0, lt=1.0,
        description='One-sided McNemar level for "significantly worse than the champion".')
    gate_min_class_support: int = Field(
        default=10, ge=1,
        description="Test images a class needs before its recall is compared.")
    min_new_samples: int = Field(default=10, ge=1, description="Approved samples since the last run needed to retrain.")
    imbalance_min_ratio: float = Field(
        default=0.5, gt=0.0, le=1.0,
        description="A label is under-represented (a warning in the training run and on the Review page) when it "
                    "has fewer approved samples than this fraction of the mean per label.")
    seed_dataset: Path = Field(
        default=Path("../shared/datasets/dandelion-grass"),
        description="Data set `make up` / `sprout bootstrap` imports.")

    @property
    def candidate_backbone_names(self) -> list[str]:
        names = [name.strip() for name in self.candidate_backbones.split(",") if name.strip()]
        return names or [self.backbone]
