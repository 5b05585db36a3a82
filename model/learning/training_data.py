"""A run's training data: the approved samples with their embeddings (cached per backbone), label indices and
split masks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from db.models import Sample, Split
from model.data.near_duplicates import group_of
from model.learning.embeddings import ImageRef, embed_images
from model.runtime.services import Services

if TYPE_CHECKING:
    from model.learning.backbones import LoadedBackbone


@dataclass(frozen=True)
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
    def development(self) -> np.ndarray:
        """The train+val mask: what cross-validation and the final head use (the test split stays held out)."""
        mask: np.ndarray = self.masks[Split.TRAIN] | self.masks[Split.VAL]
        return mask

    @property
    def development_samples(self) -> list[Sample]:
        """The train+val samples, in ``development_set``'s order (the rows of the cross-validation)."""
        return [s for s, dev in zip(self.samples, self.development, strict=True) if dev]

    @property
    def counts(self) -> dict[str, int]:
        return {split.value: int(self.masks[split].sum()) for split in Split}


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
    return data.x[data.development], data.y[data.development]


def development_groups(data: TrainingData) -> np.ndarray:
    """The near-duplicate group of each train+val sample, in ``development_set``'s order (cross-validation keeps
    each group in one fold)."""
    return np.array([group_of(s) for s in data.development_samples], dtype=np.int64)
