"""The automatic rollout rule: promote a challenger, abort it, or wait for more live evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from model.core.settings import Settings
    from model.rollout.evidence import LiveEvidence

Action = Literal["promote", "abort", "wait"]


@dataclass(frozen=True)
class RolloutRule:
    """The rule's thresholds (settings ``SPROUT_ROLLOUT_*``, validated there; the defaults are the settings')."""

    min_reviewed: int = 30
    min_shadowed: int = 500
    min_minutes: float = 60.0
    alpha: float = 0.05
    max_regression: float = 0.02
    max_error_rate: float = 0.01
    min_error_requests: int = 20
    max_latency_ratio: float = 1.5
    min_latency_requests: int = 100
    timeout_hours: float = 168.0
    timeout_fallback: Literal["abort", "promote"] = "abort"

    @classmethod
    def from_settings(cls, settings: Settings) -> RolloutRule:
        return cls(min_reviewed=settings.rollout_min_reviewed, min_shadowed=settings.rollout_min_shadowed,
                   min_minutes=settings.rollout_min_minutes, alpha=settings.rollout_alpha,
                   max_regression=settings.rollout_max_regression,
                   max_error_rate=settings.rollout_max_error_rate,
                   min_error_requests=settings.rollout_min_error_requests,
                   max_latency_ratio=settings.rollout_max_latency_ratio,
                   min_latency_requests=settings.rollout_min_latency_requests,
                   timeout_hours=settings.rollout_timeout_hours, timeout_fallback=settings.rollout_timeout_fallback)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutDecision:
    """What to do with the challenger, and the sentence a person reads (with the numbers)."""

    action: Action
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"action": self.action, "reason": self.reason}


def _regression(ev: LiveEvidence, rule: RolloutRule) -> str | None:
    """Why the challenger must go at once, or None: a significant accuracy loss on reviewed live images, an error
    rate above the tolerance, or a p99 latency above the tolerated ratio (each only with enough data)."""
    if ev.p_worse < rule.alpha:
        return (f"the challenger is significantly worse on {ev.reviewed} reviewed live images: right on "
                f"{ev.both_right + ev.only_challenger_right} against the champion's "
                f"{ev.both_right + ev.only_champion_right} (champion alone right on {ev.only_champion_right}, "
                f"challenger alone on {ev.only_challenger_right}; one-sided McNemar p={ev.p_worse:.2g} < "
                f"{rule.alpha:g})")
    if (ev.shadowed >= rule.min_error_requests and ev.challenger_error_rate is not None
            and ev.challenger_error_rate > rule.max_error_rate):
        return (f"the challenger failed on {ev.challenger_errors} of {ev.shadowed} shadowed requests "
                f"({ev.challenger_error_rate:.1%} > the tolerated {rule.max_error_rate:.1%})")
    if (ev.champion_p99_ms is not None and ev.challenger_p99_ms is not None and ev.champion_p99_ms > 0
            and min(ev.champion_latencies, ev.challenger_latencies) >= rule.min_latency_requests):
        ratio = ev.challenger_p99_ms / ev.champion_p99_ms
        if ratio > rule.max_latency_ratio:
            return (f"the challenger is too slow: p99 {ev.challenger_p99_ms:.0f} ms against the champion's "
                    f"{ev.champion_p99_ms:.0f} ms ({ratio:.2f}× > the tolerated {rule.max_latency_ratio:g}×)")
    return None


def _enough(ev: LiveEvidence, rule: RolloutRule, age: timedelta, *, gate_cleared: bool) -> str | None:
    """What made the evidence enough, or None. Traffic alone (distinct images, not requests: one image sent a
    thousand times is one) is enough only for a challenger that cleared the offline gate."""
    if ev.reviewed >= rule.min_reviewed:
        return f"{ev.reviewed} reviewed live images (≥ {rule.min_reviewed})"
    if gate_cleared and ev.images >= rule.min_shadowed and age >= timedelta(minutes=rule.min_minutes):
        return (f"{ev.images} distinct shadowed images (≥ {rule.min_shadowed}) over {_duration(age)} "
                f"(≥ {_duration(timedelta(minutes=rule.min_minutes))})")
    return None


def _behind(ev: LiveEvidence, rule: RolloutRule) -> str | None:
    """Why the challenger, though not significantly worse, is too far behind on reviewed live images to promote:
    more images right for the champion alone than the tolerance (``max_regression``, never less than one image)."""
    deficit = ev.only_champion_right - ev.only_challenger_right
    if ev.reviewed == 0 or deficit <= max(rule.max_regression * ev.reviewed, 1):
        return None
    challenger, champion = ev.both_right + ev.only_challenger_right, ev.both_right + ev.only_champion_right
    return (f"the challenger is behind on {ev.reviewed} reviewed live images, right on {challenger} against the "
            f"champion's {champion} ({deficit / ev.reviewed:.1%} > the tolerated {rule.max_regression:.1%}), though "
            "not significantly "
            f"(McNemar p={ev.p_worse:.2g})")


def _duration(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _checks(ev: LiveEvidence) -> str:
    """What the challenger was found not to regress on (for a promotion's reason)."""
    parts = [f"not significantly worse on {ev.reviewed} reviewed live images (right on "
             f"{ev.both_right + ev.only_challenger_right} vs {ev.both_right + ev.only_champion_right}, one-sided "
             f"McNemar p={ev.p_worse:.2g})" if ev.reviewed else "no reviewed live images to compare accuracy on"]
    parts.append(f"{ev.challenger_errors} errors in {ev.shadowed} shadowed requests")
    if ev.challenger_p99_ms is not None and ev.champion_p99_ms is not None:
        parts.append(f"p99 {ev.challenger_p99_ms:.0f} ms vs {ev.champion_p99_ms:.0f} ms")
    return "; ".join(parts)


def decide(evidence: LiveEvidence, rule: RolloutRule, *, started_at: datetime, now: datetime,
           gate_cleared: bool = True) -> RolloutDecision:
    """The rule, in this order:

    1. **abort** at once on a significant accuracy loss on reviewed live images (one-sided exact McNemar, the
       challenger worse, p < ``alpha``), an error rate above ``max_error_rate`` (once ``min_error_requests``
       requests were shadowed) or a p99 latency above ``max_latency_ratio`` × the champion's (once each model has
       ``min_latency_requests`` latencies);
    2. **promote** when the evidence is enough — ``min_reviewed`` reviewed pairs, or (only for a challenger that
       cleared the offline gate, ``gate_cleared``) ``min_shadowed`` distinct shadowed images and a rollout at least
       ``min_minutes`` old — none of those holds, and the challenger is not behind the champion on the reviewed live
       images by more than ``max_regression`` (never less than one image; as the gate's tolerance): further behind,
       it waits for the evidence to become significant either way;
    3. at the time-out (``timeout_hours`` after ``started_at``), the ``timeout_fallback`` — which promotes only a
       challenger that cleared the gate: a version an admin put in front of traffic is promoted on reviewed live
       images or by a person, never by the clock;
    4. else **wait**, saying what is missing.
    """
    ev, age = evidence, now - started_at
    regression = _regression(ev, rule)
    if regression is not None:
        return RolloutDecision("abort", f"Abort: {regression}; the champion stays.")
    enough, behind = _enough(ev, rule, age, gate_cleared=gate_cleared), _behind(ev, rule)
    if enough is not None and behind is None:
        return RolloutDecision("promote", f"Promote: enough live evidence ({enough}) and {_checks(ev)}.")
    timeout = timedelta(hours=rule.timeout_hours)
    traffic = (f"; or {ev.images} of {rule.min_shadowed} distinct shadowed images and {_duration(age)} of "
               f"{_duration(timedelta(minutes=rule.min_minutes))}" if gate_cleared
               else " (a version started by a person, not by the gate: only reviewed live images promote it)")
    missing = behind if enough is not None and behind is not None else (
        f"{ev.reviewed} of {rule.min_reviewed} reviewed live images{traffic}")
    if age >= timeout:
        if rule.timeout_fallback == "promote" and gate_cleared:
            return RolloutDecision("promote", f"Promote at the time-out ({_duration(timeout)}; the fallback is "
                                              f"`promote`): live evidence never became enough to promote "
                                              f"({missing}) and {_checks(ev)}.")
        fallback = ("`abort`" if rule.timeout_fallback == "abort"
                    else "`promote`, but not for a version the gate never cleared")
        return RolloutDecision("abort", f"Abort at the time-out ({_duration(timeout)}; the fallback is {fallback}): "
                                        f"live evidence never became enough to promote ({missing}); the champion "
                                        "stays.")
    return RolloutDecision("wait", f"Wait: {missing}; time-out in {_duration(timeout - age)}.")
