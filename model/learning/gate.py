"""Pure decisions behind the pipeline: is retraining due, and does a candidate pass the gate."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Decision:
    """A yes/no with the sentence that explains it (stored and logged)."""

    passed: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def retrain_due(*, new_approved: int, min_new: int, force: bool = False) -> Decision:
    """Retrain only with at least ``min_new`` samples approved since the last run, unless forced."""
    if force:
        return Decision(True, f"forced ({new_approved} new approved samples)")
    if new_approved >= min_new:
        return Decision(True, f"{new_approved} new approved samples ≥ {min_new}")
    return Decision(False, f"only {new_approved} new approved samples, {min_new} needed")


def gate(*, candidate_accuracy: float | None, min_accuracy: float,
         champion_accuracy: float | None, n_test: int) -> Decision:
    """Promote only if accuracy ≥ the floor and not worse than the champion on the same test set."""
    if n_test == 0 or candidate_accuracy is None:
        return Decision(False, "no test samples to evaluate the candidate on")
    if candidate_accuracy < min_accuracy:
        return Decision(False, f"test accuracy {candidate_accuracy:.4f} < minimum {min_accuracy:.4f}")
    if champion_accuracy is not None and candidate_accuracy < champion_accuracy:
        return Decision(
            False,
            f"test accuracy {candidate_accuracy:.4f} < champion's {champion_accuracy:.4f} "
            f"on the same {n_test} test samples",
        )
    versus = (f", champion {champion_accuracy:.4f} on the same {n_test} samples"
              if champion_accuracy is not None else ", no champion yet")
    return Decision(True, f"test accuracy {candidate_accuracy:.4f} ≥ {min_accuracy:.4f}{versus}")
