"""The numbers the gate decides on, as typed records: a model's test metrics and the evidence about a candidate.

Each record has one ``to_dict()``, the JSON of the CLI, the run record, MLflow and the API, and a ``from_dict``
that reads a stored one back (the run record of an earlier version included). Pure data: the statistics that
fill them are in ``model.learning.evaluation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model.learning.gate import GateRule

Interval = tuple[float, float]
"""A 95% confidence interval ``(low, high)`` (a JSON list ``[low, high]``)."""


def _interval(stored: Any) -> Interval | None:
    return None if stored is None else (stored[0], stored[1])


def _listed(interval: Interval | None) -> list[float] | None:
    return None if interval is None else list(interval)


@dataclass(frozen=True)
class ClassMetrics:
    """One label's precision, recall and F1 on a test set, and its number of test samples."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> ClassMetrics:
        return cls(precision=stored["precision"], recall=stored["recall"], f1=stored["f1"],
                   support=stored["support"])


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (true, predicted) label pairs: rows true, columns predicted, both over ``labels``."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "matrix": [list(row) for row in self.matrix]}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> ConfusionMatrix:
        return cls(labels=tuple(stored["labels"]), matrix=tuple(tuple(row) for row in stored["matrix"]))


@dataclass(frozen=True)
class Metrics:
    """A model's classification metrics on a test set (None where no sample allows one)."""

    n: int
    accuracy: float | None
    macro_f1: float | None
    log_loss: float | None
    per_class: Mapping[str, ClassMetrics]
    confusion_matrix: ConfusionMatrix

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "macro_f1": self.macro_f1, "log_loss": self.log_loss,
                "per_class": {label: values.to_dict() for label, values in self.per_class.items()},
                "confusion_matrix": self.confusion_matrix.to_dict()}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Metrics:
        return cls(n=stored["n"], accuracy=stored["accuracy"], macro_f1=stored["macro_f1"],
                   log_loss=stored["log_loss"],
                   per_class={label: ClassMetrics.from_dict(values) for label, values in stored["per_class"].items()},
                   confusion_matrix=ConfusionMatrix.from_dict(stored["confusion_matrix"]))


@dataclass(frozen=True)
class Paired:
    """Candidate vs champion on the same test samples: how many each got right."""

    both: int
    candidate_only: int
    champion_only: int
    neither: int

    @property
    def mcnemar_p(self) -> float:
        """One-sided exact McNemar p-value of "the champion is better" (1.0 when they never disagree)."""
        from scipy.stats import binomtest

        discordant = self.candidate_only + self.champion_only
        if discordant == 0:
            return 1.0
        return float(binomtest(self.champion_only, discordant, 0.5, alternative="greater").pvalue)

    def to_dict(self) -> dict[str, int]:
        return {"both": self.both, "candidate_only": self.candidate_only, "champion_only": self.champion_only,
                "neither": self.neither}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Paired:
        return cls(both=stored["both"], candidate_only=stored["candidate_only"],
                   champion_only=stored["champion_only"], neither=stored["neither"])


@dataclass(frozen=True)
class RecallDelta:
    """One label's test recall, candidate against champion (``delta`` = candidate − champion)."""

    candidate: float
    champion: float
    delta: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"candidate": self.candidate, "champion": self.champion, "delta": self.delta, "support": self.support}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> RecallDelta:
        return cls(candidate=stored["candidate"], champion=stored["champion"], delta=stored["delta"],
                   support=stored["support"])


@dataclass(frozen=True)
class Baseline:
    """The trivial classifier a first model must clearly beat: always answering the commonest label. Its accuracy
    is that label's share (chance, ``1/n_labels``, for a balanced set)."""

    share: float  # of the cross-validated samples
    test_share: float | None  # of the test samples
    n_labels: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"share": self.share, "test_share": self.test_share, "n_labels": self.n_labels}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Baseline:
        return cls(share=stored["share"], test_share=stored["test_share"], n_labels=stored["n_labels"])


@dataclass(frozen=True)
class ChampionCrossValidation:
    """Out-of-fold accuracy on the train+val samples both the candidate's run and the champion's run
    cross-validated, each against the label it was given then, and the one-sided exact McNemar p-value of "the
    champion run's is higher": on the same images, the labels got harder to predict (flipped) or the model worse."""

    accuracy: float  # the champion run's
    candidate_accuracy: float
    n: int
    p: float

    def to_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "candidate_accuracy": self.candidate_accuracy, "n": self.n, "p": self.p}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> ChampionCrossValidation:
        return cls(accuracy=stored["accuracy"], candidate_accuracy=stored["candidate_accuracy"], n=stored["n"],
                   p=stored["p"])


@dataclass(frozen=True)
class GateEvidence:
    """What the gate decides on: the candidate's cross-validation over the train+val samples, its test accuracy
    with an interval, the paired comparison with the champion on the same test samples, per-label recall changes,
    the calibration, and the rule applied (None in runs recorded before the rule was stored)."""

    n_cv: int
    cv_folds: int
    cv_accuracy: float
    cv_accuracy_ci: Interval | None
    cv_log_loss: float
    cv_macro_f1: float
    test_accuracy: float | None
    n_test: int
    test_accuracy_ci: Interval | None
    champion_version: str | None
    champion_test_accuracy: float | None
    paired: Paired | None
    mcnemar_p: float | None
    recall_deltas: Mapping[str, RecallDelta]
    temperature: float
    ece_before: float
    ece_after: float
    rule: GateRule | None = None
    baseline: Baseline | None = None  # None in runs recorded before the baseline was
    champion_cv: ChampionCrossValidation | None = None

    def to_dict(self) -> dict[str, Any]:
        stored: dict[str, Any] = {
            "n_cv": self.n_cv, "cv_folds": self.cv_folds, "cv_accuracy": self.cv_accuracy,
            "cv_accuracy_ci": _listed(self.cv_accuracy_ci), "cv_log_loss": self.cv_log_loss,
            "cv_macro_f1": self.cv_macro_f1, "test_accuracy": self.test_accuracy, "n_test": self.n_test,
            "test_accuracy_ci": _listed(self.test_accuracy_ci), "champion_version": self.champion_version,
            "champion_test_accuracy": self.champion_test_accuracy,
            "paired": self.paired.to_dict() if self.paired is not None else None, "mcnemar_p": self.mcnemar_p,
            "recall_deltas": {label: delta.to_dict() for label, delta in self.recall_deltas.items()},
            "temperature": self.temperature, "ece_before": self.ece_before, "ece_after": self.ece_after,
        }
        if self.rule is not None:
            stored["rule"] = self.rule.to_dict()
        if self.baseline is not None:
            stored["baseline"] = self.baseline.to_dict()
        if self.champion_cv is not None:
            stored["champion_cv"] = self.champion_cv.to_dict()
        return stored

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> GateEvidence:
        paired, rule = stored["paired"], stored.get("rule")
        baseline, champion_cv = stored.get("baseline"), stored.get("champion_cv")
        return cls(
            n_cv=stored["n_cv"], cv_folds=stored["cv_folds"], cv_accuracy=stored["cv_accuracy"],
            cv_accuracy_ci=_interval(stored["cv_accuracy_ci"]), cv_log_loss=stored["cv_log_loss"],
            cv_macro_f1=stored["cv_macro_f1"], test_accuracy=stored["test_accuracy"], n_test=stored["n_test"],
            test_accuracy_ci=_interval(stored["test_accuracy_ci"]), champion_version=stored["champion_version"],
            champion_test_accuracy=stored["champion_test_accuracy"],
            paired=Paired.from_dict(paired) if paired is not None else None, mcnemar_p=stored["mcnemar_p"],
            recall_deltas={label: RecallDelta.from_dict(delta) for label, delta in stored["recall_deltas"].items()},
            temperature=stored["temperature"], ece_before=stored["ece_before"], ece_after=stored["ece_after"],
            rule=GateRule.from_dict(rule) if rule is not None else None,
            baseline=Baseline.from_dict(baseline) if baseline is not None else None,
            champion_cv=ChampionCrossValidation.from_dict(champion_cv) if champion_cv is not None else None,
        )
