"""Fit a candidate's guards (``model.serving.guards``): the abstain thresholds on its calibrated out-of-fold
predictions (``abstain``) and the unfamiliarity reference and threshold on its embeddings (``familiarity``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from db.models import Split
from model.core.settings import Settings
from model.learning.abstain import fit_abstain_rule
from model.learning.assessment import Candidate
from model.learning.evaluation import Calibration
from model.learning.familiarity import fit_familiarity
from model.learning.training import softmax
from model.learning.training_data import development_set
from model.serving.guards import Guards


@dataclass(frozen=True)
class FittedGuards:
    """The rules (the graph's metadata) and the label centroids the graph's ``unfamiliarity`` output needs."""

    rules: Guards
    reference: np.ndarray


def fit_guards(candidate: Candidate, calibration: Calibration, settings: Settings) -> FittedGuards:
    """Thresholds on the out-of-fold probabilities scaled by the served temperature (``SPROUT_ABSTAIN_PRECISION``);
    the label centroids and their threshold on the train+val embeddings, held out by fold, and the test split's
    (``SPROUT_UNFAMILIAR_RATE``)."""
    data, cv = candidate.data, candidate.cv
    proba = softmax(cv.logits / calibration.temperature)
    abstain = fit_abstain_rule(proba, cv.y, list(data.labels), target=settings.abstain_precision)
    x_dev, y_dev = development_set(data)
    x_test, _ = data.split(Split.TEST)
    familiarity = fit_familiarity(x_dev, y_dev, cv.fold_of, x_test, rate=settings.unfamiliar_rate)
    return FittedGuards(rules=Guards(abstain=abstain, unfamiliar=familiarity.rule), reference=familiarity.reference)
