"""What suspect-label detection judges each sample's label by, kept with a run (``training_runs.out_of_fold``).

Every sample of the run is judged by a model that never trained on it: a train+val sample by the head of the
cross-validation fold that held it out (*out-of-fold*), a test sample by the run's final head, trained on all of
train+val (*out-of-sample*: the head the gate graded, read before its temperature scaling, so that both kinds are
on the scale of the out-of-fold logits). A mislabelled test image, the most harmful kind (it grades every
candidate), is thus suspected like any other.

Stored as JSON: ``{"labels", "sample_ids", "proba", "out_of_sample": {"sample_ids", "proba"}}``. The top-level
``sample_ids``/``proba`` are the out-of-fold part, as in runs recorded before the test part existed (those read
back with no out-of-sample samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from db.models import Split
from model.learning.evaluation import CrossValidation
from model.learning.training import softmax
from model.learning.training_data import TrainingData

if TYPE_CHECKING:
    from model.learning.training import Head

Source = Literal["out_of_fold", "out_of_sample"]
DECIMALS = 6  # stored probabilities are rounded (the JSON stays small)


@dataclass(frozen=True)
class LabelEvidence:
    """Per sample: its id, the probabilities of a model that did not train on it, and which model that was."""

    labels: list[str]
    sample_ids: list[int]
    proba: np.ndarray  # (samples, labels)
    out_of_sample: np.ndarray  # (samples,) bool: judged by the final head (a test sample), else out-of-fold

    def source(self, row: int) -> Source:
        return "out_of_sample" if self.out_of_sample[row] else "out_of_fold"

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON (see the module's docstring)."""
        ids = np.asarray(self.sample_ids, dtype=np.int64)
        proba = np.round(self.proba, DECIMALS)
        fold, sample = ~self.out_of_sample, self.out_of_sample
        return {"labels": list(self.labels), "sample_ids": ids[fold].tolist(), "proba": proba[fold].tolist(),
                "out_of_sample": {"sample_ids": ids[sample].tolist(), "proba": proba[sample].tolist()}}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> LabelEvidence | None:
        """The stored record, old (out-of-fold only) or new; None when there is none or it holds no sample."""
        if not stored or not stored.get("sample_ids"):
            return None
        n_labels = len(stored["labels"])
        test = stored.get("out_of_sample") or {"sample_ids": [], "proba": []}
        parts = [np.asarray(p, dtype=np.float64).reshape(-1, n_labels) for p in (stored["proba"], test["proba"])]
        return cls(labels=list(stored["labels"]), sample_ids=[*stored["sample_ids"], *test["sample_ids"]],
                   proba=np.concatenate(parts),
                   out_of_sample=np.repeat([False, True], [len(stored["sample_ids"]), len(test["sample_ids"])]))


def label_evidence(data: TrainingData, cv: CrossValidation, head: Head, *, temperature: float) -> LabelEvidence:
    """The run's record: ``cv``'s out-of-fold probabilities for the train+val samples, the final ``head``'s (its
    temperature-scaled logits times ``temperature``: the same scale) for the test samples."""
    development = [s.id for s in data.development_samples]
    x_test, _ = data.split(Split.TEST)
    test_proba = softmax(head.logits(x_test) * temperature)
    return LabelEvidence(labels=list(data.labels), sample_ids=development + [s.id for s in data.test_samples],
                         proba=np.concatenate([cv.proba, test_proba]),
                         out_of_sample=np.repeat([False, True], [len(development), len(x_test)]))
