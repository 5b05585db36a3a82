"""Hand-made live observations for the rollout tests: any labels, the champion's and the challenger's answers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from model.rollout.evidence import Observation

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SCENES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]  # 6 labels, as ../shared/datasets/scenes
TWO = ["dandelion", "grass"]


def observe(champion: str, challenger: str | None, reviewed: str | None = None, *, champion_ms: float = 20.0,
            challenger_ms: float = 22.0, champion_confidence: float = 0.8,
            challenger_confidence: float = 0.75) -> Observation:
    """One shadowed image; ``challenger`` None means the challenger failed on it."""
    failed = challenger is None
    return Observation(
        champion_label=champion, champion_confidence=champion_confidence, champion_latency_ms=champion_ms,
        challenger_label=challenger, challenger_confidence=None if failed else challenger_confidence,
        challenger_latency_ms=None if failed else challenger_ms,
        challenger_error=("InvalidArgument: the graph failed" if failed else None), reviewed_label=reviewed, at=START)


def paired(labels: Sequence[str], *, both_right: int, only_champion: int, only_challenger: int, both_wrong: int,
           unreviewed: int = 0, **timing: float) -> list[Observation]:
    """Reviewed observations with exactly these paired counts over ``labels`` (cycled), plus ``unreviewed`` ones
    where both models agree."""
    out: list[Observation] = []
    k = len(labels)

    def truth(i: int) -> tuple[str, str, str]:  # the right label, a wrong one, another wrong one (when k > 2)
        return labels[i % k], labels[(i + 1) % k], labels[(i + 2) % k]

    i = 0
    for count, champion_right, challenger_right in ((both_right, True, True), (only_champion, True, False),
                                                    (only_challenger, False, True), (both_wrong, False, False)):
        for _ in range(count):
            right, wrong, other = truth(i)
            out.append(observe(right if champion_right else wrong,
                               right if challenger_right else (other if k > 2 and not champion_right else wrong),
                               right, **timing))
            i += 1
    for j in range(unreviewed):
        out.append(observe(labels[j % k], labels[j % k], None, **timing))
    return out
