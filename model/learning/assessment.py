"""Assess one backbone's candidate: embed the samples (cached) and cross-validate a head on the train+val part."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from db import queries
from db.models import Sample
from model.learning.candidates import AssessedCandidate
from model.learning.evaluation import CrossValidation, cross_validate, cv_log_loss
from model.learning.gate import select_trainable
from model.learning.training_data import TrainingData, development_groups, development_set, embed_samples
from model.runtime.services import Services

if TYPE_CHECKING:
    from model.learning.backbones import LoadedBackbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One backbone's candidate: its embeddings and its cross-validation over the train+val samples."""

    backbone: LoadedBackbone
    data: TrainingData
    cv: CrossValidation

    @property
    def name(self) -> str:
        return self.backbone.info.name

    def summary(self) -> AssessedCandidate:
        """The row of the candidates table (run record, MLflow, JSON)."""
        return AssessedCandidate(backbone=self.name, accuracy=self.cv.accuracy, accuracy_ci=self.cv.accuracy_ci,
                                 log_loss=cv_log_loss(self.cv), folds=self.cv.folds,
                                 weight_decay=self.cv.weight_decay, n_embedded=self.data.n_embedded)


def assess_candidate(svc: Services, session: Session, backbone_name: str, samples: list[Sample],
                     labels: list[str]) -> Candidate:
    """Embed (cached) and cross-validate one backbone's candidate."""
    from model.learning.backbones import load_backbone  # torch: imported only when training

    backbone = load_backbone(backbone_name, svc.settings)
    data = embed_samples(svc, session, backbone, samples, labels)
    x, y = development_set(data)
    cv = cross_validate(x, y, n_classes=len(labels), seed=svc.settings.seed, groups=development_groups(data),
                        search_samples=svc.settings.decay_search_samples, workers=svc.settings.training_workers)
    log.info("candidate %s: cross-validated accuracy %.4f, log loss %.4f", backbone_name, cv.accuracy,
             cv_log_loss(cv))
    return Candidate(backbone=backbone, data=data, cv=cv)


def assess(svc: Services, backbone_name: str) -> AssessedCandidate:
    """One backbone's candidate on all trainable approved samples, cross-validated (no run is recorded): what a
    mapped Airflow task computes, one per backbone, before the selection task picks the one to train."""
    with svc.session() as session:
        samples, labels, _ = select_trainable(queries.approved_samples(session))
        return assess_candidate(svc, session, backbone_name, samples, labels).summary()
