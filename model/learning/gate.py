"""Pure decisions behind the pipeline: is retraining due, which labels can a run train, and does a candidate pass
the gate (cheap to import: the API's reports use them)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from db.models import Sample, Split
from model.core.errors import NotEnoughDataError
from model.core.settings import Settings

if TYPE_CHECKING:
    from model.learning.evidence import GateEvidence

log = logging.getLogger(__name__)
MIN_DEVELOPMENT_SAMPLES = 2  # train+val samples a label needs: two, so that cross-validation can hold one out


@dataclass(frozen=True)
class Decision:
    """A yes/no with the sentence that explains it (stored and logged)."""

    passed: bool
    reason: str
    evidence: GateEvidence | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason,
                "evidence": self.evidence.to_dict() if self.evidence is not None else None}


def left_out_labels(per_split: dict[str, Counter[Split]]) -> tuple[list[str], list[str]]:
    """Labels a run can train (each has at least ``MIN_DEVELOPMENT_SAMPLES`` train+val samples, as
    cross-validation needs), and a warning for every other label saying how many more it needs: a new label that
    appears in approvals trains once it has them."""
    warnings = []
    for label, counts in sorted(per_split.items()):
        missing = MIN_DEVELOPMENT_SAMPLES - counts[Split.TRAIN] - counts[Split.VAL]
        if missing > 0:
            found = ", ".join(f"{counts[split]} {split.value}" for split in Split if counts[split])
            warnings.append(f"Label {label!r} was left out: it needs {missing} more training "
                            f"sample{'s' if missing > 1 else ''} (train or val split) to be trained "
                            f"({sum(counts.values())} approved so far: {found}).")
    kept = sorted(label for label, counts in per_split.items()
                  if counts[Split.TRAIN] + counts[Split.VAL] >= MIN_DEVELOPMENT_SAMPLES)
    return kept, warnings


def select_trainable(samples: list[Sample]) -> tuple[list[Sample], list[str], list[str]]:
    """The samples and labels a run can use, and a warning for every label left out.

    A label without training samples (say, one approval of a new label that hashed into the test split)
    is left out of the run with a warning instead of failing every run. NotEnoughDataError only when fewer
    than two labels remain.
    """
    per_split: dict[str, Counter[Split]] = {}
    for s in samples:
        per_split.setdefault(s.label or "", Counter())[s.split] += 1
    kept, warnings = left_out_labels(per_split)
    if len(kept) < 2:
        raise NotEnoughDataError(
            f"Need at least two labels, each with training samples; have {dict(Counter(s.label for s in samples))}")
    for warning in warnings:
        log.warning("%s", warning)
    return [s for s in samples if s.label in kept], kept, warnings


def retrain_due(*, new_approved: int, min_new: int, force: bool = False) -> Decision:
    """Retrain only with at least ``min_new`` samples approved since the last run, unless forced."""
    if force:
        return Decision(True, f"forced ({new_approved} new approved samples)")
    if new_approved >= min_new:
        return Decision(True, f"{new_approved} new approved samples ≥ {min_new}")
    return Decision(False, f"only {new_approved} new approved samples, {min_new} needed")


@dataclass(frozen=True)
class GateRule:
    """The gate's thresholds (settings ``SPROUT_GATE_*``); ``min_accuracy`` is an absolute floor the operator may
    set (None: only the trivial baseline and the champion judge)."""

    min_accuracy: float | None = None
    max_regression: float = 0.02
    alpha: float = 0.05  # one-sided McNemar: "the champion is significantly better"
    min_class_support: int = 10  # a class's recall is compared only with this many test samples

    @classmethod
    def from_settings(cls, settings: Settings) -> GateRule:
        return cls(min_accuracy=settings.gate_min_accuracy, max_regression=settings.gate_max_regression,
                   alpha=settings.gate_alpha, min_class_support=settings.gate_min_class_support)

    def to_dict(self) -> dict[str, float | int | None]:
        return {"min_accuracy": self.min_accuracy, "max_regression": self.max_regression, "alpha": self.alpha,
                "min_class_support": self.min_class_support}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> GateRule:
        return cls(min_accuracy=stored["min_accuracy"], max_regression=stored["max_regression"],
                   alpha=stored["alpha"], min_class_support=stored["min_class_support"])


def gate(evidence: GateEvidence, rule: GateRule) -> Decision:
    """Promote on evidence, not on noise (the numbers: ``model.learning.evidence``, computed by
    ``model.learning.evaluation``):

    - the cross-validated accuracy's 95% lower bound beats the trivial baseline (always the commonest label: its
      share, chance for a balanced set), and the test interval's upper bound is above the test split's;
    - the operator's floor, when ``min_accuracy`` is set: the cross-validated accuracy ≥ it and the test
      interval's upper bound not below it;
    - against the champion: on the train+val images both runs cross-validated, the out-of-fold accuracy not
      significantly below the champion run's (McNemar) by more than ``max_regression``, and on the same test images not
      significantly worse (McNemar) nor worse by more than ``max_regression`` in accuracy or in the recall of a
      class with enough test samples, the tolerance never less than one test image.
    """
    n_test, cv_acc, cv_ci = evidence.n_test, evidence.cv_accuracy, evidence.cv_accuracy_ci
    test_acc, test_ci = evidence.test_accuracy, evidence.test_accuracy_ci
    if not n_test or test_acc is None or test_ci is None:
        return Decision(False, "no test samples to evaluate the candidate on", evidence)
    cv = f"cross-validated accuracy {cv_acc:.3f} ({_ci(cv_ci)}, {evidence.n_cv} samples)"
    test = f"test accuracy {test_acc:.3f} ({_ci(test_ci)}, {n_test} images)"
    floor = rule.min_accuracy
    if floor is not None:
        if cv_acc < floor:
            return Decision(False, f"{cv} < minimum {floor:.3f}", evidence)
        if test_ci[1] < floor:
            return Decision(False, f"{test}: even its upper bound is below the minimum {floor:.3f}", evidence)
    champion, paired, p = evidence.champion_version, evidence.paired, evidence.mcnemar_p
    champion_acc = evidence.champion_test_accuracy
    versus = None
    if champion is not None and paired is not None and p is not None and champion_acc is not None:
        versus = (f"champion v{champion} on the same {n_test} images: {paired.candidate_only} right only by the "
                  f"candidate, {paired.champion_only} only by the champion (McNemar p={p:.3f})")
        refusal = _versus_champion(evidence, rule, cv=cv, test=test, versus=versus)
        if refusal is not None:
            return Decision(False, refusal, evidence)
    passed = [cv]
    if (baseline := evidence.baseline) is not None:
        trivial = _baseline(baseline.share, baseline.n_labels)
        if cv_ci is None or cv_ci[0] <= baseline.share:
            return Decision(False, f"{cv}: not clearly better than the {trivial}", evidence)
        if baseline.test_share is not None and baseline.test_share < 1.0 and test_ci[1] <= baseline.test_share:
            return Decision(False, f"{test}: even its upper bound is not above the "
                                   f"{_baseline(baseline.test_share, baseline.n_labels)} of the test images",
                            evidence)
        passed = [f"{cv} beats the {trivial}"]
    if floor is not None:
        passed[0] += f", ≥ the minimum {floor:.3f}"
    passed.append(test)
    passed.append("no champion yet" if versus is None else f"not worse than the {versus}")
    return Decision(True, "; ".join(passed), evidence)


def _versus_champion(evidence: GateEvidence, rule: GateRule, *, cv: str, test: str, versus: str) -> str | None:
    """Why the candidate is worse than the champion, or None: labels harder to predict than in the champion's
    run, significantly worse on the same test images, or worse beyond the tolerance overall or in a class."""
    n_test, test_acc = evidence.n_test, evidence.test_accuracy or 0.0
    if (prior := evidence.champion_cv) is not None:
        fall = prior.accuracy - prior.candidate_accuracy
        if prior.p < rule.alpha and fall > rule.max_regression + 1e-9:
            return (f"{cv}; on the {prior.n} training images both runs cross-validated its out-of-fold accuracy is "
                    f"{prior.candidate_accuracy:.3f} against {prior.accuracy:.3f} in the champion "
                    f"v{evidence.champion_version}'s run (McNemar p={prior.p:.3f}): the same images' labels got "
                    f"harder to predict (changed or flipped), or the model got worse at them")
    if evidence.mcnemar_p is not None and evidence.mcnemar_p < rule.alpha:
        return f"significantly worse than the {versus}"
    drop = (evidence.champion_test_accuracy or 0.0) - test_acc
    tolerance = max(rule.max_regression, 1.0 / n_test)
    if drop > tolerance + 1e-9:
        return f"{test} is {drop:.3f} below the {versus}; more than the tolerated {tolerance:.3f}"
    for label, delta in sorted(evidence.recall_deltas.items()):
        if delta.support < rule.min_class_support:
            continue
        class_tolerance = max(rule.max_regression, 1.0 / delta.support)
        if -delta.delta > class_tolerance + 1e-9:
            return (f"recall of {label!r} falls by {-delta.delta:.3f} ({delta.support} test images; tolerated "
                    f"{class_tolerance:.3f}) against the {versus}")
    return None


def _baseline(share: float, n_labels: int) -> str:
    """The trivial baseline named: its accuracy, and chance when they differ."""
    chance = 1.0 / max(n_labels, 1)
    named = f"trivial baseline {share:.3f} (always the commonest of {n_labels} labels"
    return named + (")" if abs(share - chance) < 5e-4 else f"; chance {chance:.3f})")


def _ci(interval: tuple[float, float] | None) -> str:
    """``95% CI low–high`` (cross-validation over no sample has none)."""
    return "95% CI n/a" if interval is None else f"95% CI {interval[0]:.3f}–{interval[1]:.3f}"
