"""Settings of rollouts (``SPROUT_*``): how a challenger serves beside the champion and the rule that judges it;
part of the one ``Settings`` object."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class RolloutSettings(BaseModel):
    """Shadow and canary serving, and the rollout rule's thresholds."""

    rollout: Literal["direct", "shadow", "canary"] = Field(
        default="direct",
        description="What a candidate that clears the gate becomes: `direct` the champion at once; `shadow` or "
                    "`canary` the challenger (an MLflow alias beside the champion), judged on live traffic by "
                    "`sprout rollout judge` and promoted or aborted by the rule (docs: rollout).")
    shadow_share: float = Field(
        default=1.0, ge=0, le=1,
        description="Shadow: the share of `/predict` and `/v2` requests the challenger also scores, off the "
                    "response path (the answer is always the champion's).")
    canary_share: float = Field(
        default=0.1, ge=0, le=1,
        description="Canary: the share of client keys (the `X-Sprout-Client` header, else the image's hash) "
                    "the challenger answers; the same key always reaches the same version.")
    shadow_queue: int = Field(
        default=64, ge=1, le=10_000,
        description="Images waiting for the challenger; beyond it a shadowed request is dropped and counted "
                    "(`sprout_rollout_scored_total{outcome=\"dropped\"}`), never waited for.")
    rollout_max_observations: int = Field(
        default=100_000, ge=100,
        description="Live observations kept per rollout (images both models scored); beyond it no more are "
                    "recorded for that rollout (the judge has long decided by then).")
    rollout_metrics_seconds: float = Field(
        default=30.0, gt=0,
        description="How often the API recomputes the rollout gauges of `/metrics` from the open rollout's live "
                    "evidence (in the background, only when observations or reviews changed).")

    # The rollout rule (model/rollout/rule.py): when live evidence promotes or aborts a challenger.
    rollout_min_reviewed: int = Field(
        default=30, ge=1,
        description="Enough live evidence, first way: this many reviewed live images both models answered (a "
                    "reviewer's label to judge each pair by).")
    rollout_min_shadowed: int = Field(
        default=500, ge=1,
        description="Enough live evidence, second way (with `SPROUT_ROLLOUT_MIN_MINUTES`), for a challenger that "
                    "cleared the gate only: this many distinct shadowed images, reviewed or not; then only errors, "
                    "latency and the reviewed images there are judge.")
    rollout_min_minutes: float = Field(
        default=60.0, ge=0,
        description="The age a rollout needs before its shadowed images alone are enough evidence.")
    rollout_alpha: float = Field(
        default=0.05, gt=0.0, lt=0.5,
        description='One-sided exact McNemar level on reviewed live images for "the challenger is significantly '
                    'worse" (an abort at once).')
    rollout_max_regression: float = Field(
        default=0.02, ge=0.0, le=1.0,
        description="Largest tolerated accuracy deficit of the challenger on reviewed live images (never less than "
                    "one image), as the gate's `SPROUT_GATE_MAX_REGRESSION`: a challenger further behind but not "
                    "yet significantly worse is not promoted; it waits for more evidence (or the time-out).")
    rollout_max_error_rate: float = Field(
        default=0.01, ge=0.0, lt=1.0,
        description="Largest tolerated share of shadowed requests the challenger fails on; above it, an abort "
                    "(the champion's errors are not observed in shadow, so the tolerance is absolute).")
    rollout_min_error_requests: int = Field(
        default=20, ge=1,
        description="Shadowed requests needed before the challenger's error rate counts.")
    rollout_max_latency_ratio: float = Field(
        default=1.5, ge=1.0,
        description="Largest tolerated ratio of p99 latencies, challenger / champion; above it, an abort.")
    rollout_min_latency_requests: int = Field(
        default=100, ge=1,
        description="Latencies each model needs before the p99 ratio counts.")
    rollout_timeout_hours: float = Field(
        default=168.0, gt=0,
        description="A rollout whose evidence never became enough is decided by `SPROUT_ROLLOUT_TIMEOUT_FALLBACK` "
                    "after this long (default 7 days).")
    rollout_timeout_fallback: Literal["abort", "promote"] = Field(
        default="abort",
        description="The decision at the time-out: `abort` keeps the champion when live evidence never became "
                    "enough; `promote` promotes it then (any abort condition still aborts first; never a version "
                    "started by a person rather than the gate).")

    @model_validator(mode="after")
    def _check_rollout_rule(self) -> Self:
        if self.rollout_timeout_hours * 60 <= self.rollout_min_minutes:
            raise ValueError(
                f"SPROUT_ROLLOUT_TIMEOUT_HOURS ({self.rollout_timeout_hours:g} h) must be longer than "
                f"SPROUT_ROLLOUT_MIN_MINUTES ({self.rollout_min_minutes:g} min), or shadowed requests could never "
                "be enough evidence")
        return self
