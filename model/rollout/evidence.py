"""Live evidence on a challenger: what it and the champion answered on the same production images (shadow or
canary), paired against the reviewers' labels where they exist.

Any label set, 2 labels or 10: labels are compared as strings, never enumerated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Observation:
    """One production image scored by both models. ``challenger_label`` is None when the challenger failed on it
    (``challenger_error`` says why); ``reviewed_label`` is the reviewer's label once the image was approved or
    corrected (None while unreviewed or rejected); ``at`` is UTC; ``image`` the sha256 of its bytes (None: unknown,
    counted as an image of its own)."""

    champion_label: str
    champion_confidence: float
    champion_latency_ms: float
    challenger_label: str | None
    challenger_confidence: float | None
    challenger_latency_ms: float | None
    challenger_error: str | None
    reviewed_label: str | None
    at: datetime
    image: str | None = None


def _binom_greater(successes: int, trials: int) -> float:
    """One-sided exact binomial p-value of "``successes`` of ``trials`` is more than half" (1.0 with no trials)."""
    if trials == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(successes, trials, 0.5, alternative="greater").pvalue)


def _p99(values: Sequence[float]) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), 99)) if values else None


@dataclass(frozen=True)
class LiveEvidence:
    """The comparison of a challenger with the champion on live traffic.

    On reviewed images (a reviewer's label and a challenger answer): the paired 2×2 counts, each model's accuracy
    and McNemar's exact test on the discordant pairs, one-sided each way (``p_worse``: the champion is right alone
    more often than chance allows, i.e. the challenger is worse; ``p_better``: the reverse; 1.0 when they never
    disagree). On all shadowed traffic: ``images`` (the distinct images among the ``shadowed`` requests),
    ``answered`` (the challenger answered), the agreement rate and the mean confidence shift (challenger − champion)
    on those, the challenger's errors and error rate (over all shadowed requests; the champion's errors are not
    observed here: a request the champion failed on was never shadowed), and each model's p99 latency (None with
    no data)."""

    shadowed: int
    images: int
    answered: int
    reviewed: int
    both_right: int
    only_champion_right: int
    only_challenger_right: int
    both_wrong: int
    champion_accuracy: float | None
    challenger_accuracy: float | None
    p_worse: float
    p_better: float
    agreement: float | None
    confidence_shift: float | None
    challenger_errors: int
    challenger_error_rate: float | None
    champion_p99_ms: float | None
    challenger_p99_ms: float | None
    champion_latencies: int
    challenger_latencies: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> LiveEvidence:
        return cls(**{name: stored[name] for name in cls.__dataclass_fields__})


def live_evidence(observations: Iterable[Observation]) -> LiveEvidence:
    """The live evidence of these observations (any order, any labels)."""
    shadowed = answered = agree = errors = 0
    both_right = only_champion = only_challenger = both_wrong = 0
    shifts: list[float] = []
    images: set[str] = set()
    champion_latencies: list[float] = []
    challenger_latencies: list[float] = []
    for obs in observations:
        shadowed += 1
        images.add(obs.image if obs.image is not None else f"#{shadowed}")
        champion_latencies.append(obs.champion_latency_ms)
        if obs.challenger_label is None:
            errors += 1
            continue
        answered += 1
        agree += obs.challenger_label == obs.champion_label
        if obs.challenger_confidence is not None:
            shifts.append(obs.challenger_confidence - obs.champion_confidence)
        if obs.challenger_latency_ms is not None:
            challenger_latencies.append(obs.challenger_latency_ms)
        if obs.reviewed_label is not None:
            champion_right = obs.champion_label == obs.reviewed_label
            challenger_right = obs.challenger_label == obs.reviewed_label
            both_right += champion_right and challenger_right
            only_champion += champion_right and not challenger_right
            only_challenger += challenger_right and not champion_right
            both_wrong += not champion_right and not challenger_right
    reviewed = both_right + only_champion + only_challenger + both_wrong
    discordant = only_champion + only_challenger
    return LiveEvidence(
        shadowed=shadowed, images=len(images), answered=answered, reviewed=reviewed, both_right=both_right,
        only_champion_right=only_champion, only_challenger_right=only_challenger, both_wrong=both_wrong,
        champion_accuracy=(both_right + only_champion) / reviewed if reviewed else None,
        challenger_accuracy=(both_right + only_challenger) / reviewed if reviewed else None,
        p_worse=_binom_greater(only_champion, discordant), p_better=_binom_greater(only_challenger, discordant),
        agreement=agree / answered if answered else None,
        confidence_shift=float(np.mean(shifts)) if shifts else None,
        challenger_errors=errors, challenger_error_rate=errors / shadowed if shadowed else None,
        champion_p99_ms=_p99(champion_latencies), challenger_p99_ms=_p99(challenger_latencies),
        champion_latencies=len(champion_latencies), challenger_latencies=len(challenger_latencies))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def describe(evidence: LiveEvidence, alpha: float = 0.05) -> str:
    """The comparison in plain words (the Models page), e.g. "On 57 reviewed live images the challenger was right on
    51 and the champion on 49 (challenger alone right on 4, champion alone on 2; McNemar p=0.34): not significantly
    different. Agreement 93% over 812 shadowed requests; challenger p99 41 ms vs 38 ms; 0 errors."
    """
    ev = evidence
    if ev.shadowed == 0:
        return "No live traffic compared yet."
    if ev.reviewed:
        challenger_ahead = ev.only_challenger_right > ev.only_champion_right
        p = ev.p_better if challenger_ahead else ev.p_worse
        if ev.p_worse < alpha:
            verdict = "the challenger is significantly worse"
        elif ev.p_better < alpha:
            verdict = "the challenger is significantly better"
        else:
            verdict = "not significantly different"
        accuracy = (f"On {_plural(ev.reviewed, 'reviewed live image')} the challenger was right on "
                    f"{ev.both_right + ev.only_challenger_right} and the champion on "
                    f"{ev.both_right + ev.only_champion_right} (challenger alone right on {ev.only_challenger_right}, "
                    f"champion alone on {ev.only_champion_right}; McNemar p={p:.2g}): {verdict}.")
    else:
        accuracy = "No reviewed live image yet."
    traffic = [f"agreement {ev.agreement:.0%} over {_plural(ev.shadowed, 'shadowed request')}"
               if ev.agreement is not None else f"{_plural(ev.shadowed, 'shadowed request')}"]
    if ev.challenger_p99_ms is not None and ev.champion_p99_ms is not None:
        traffic.append(f"challenger p99 {ev.challenger_p99_ms:.0f} ms vs {ev.champion_p99_ms:.0f} ms")
    errors = _plural(ev.challenger_errors, "error")
    if ev.challenger_errors and ev.challenger_error_rate is not None:
        errors += f" ({ev.challenger_error_rate:.1%})"
    traffic.append(errors)
    sentence = "; ".join(traffic)
    return f"{accuracy} {sentence[0].upper()}{sentence[1:]}."
