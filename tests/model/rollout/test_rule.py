"""The rollout rule: abort at once on an accuracy, error or latency regression; promote on enough live evidence;
the time-out's fallback; else wait, saying what is missing. Hand-made evidence on 2 and on 6 labels, and
property checks over random seeds."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from model.core.settings import Settings
from model.rollout.evidence import Observation, live_evidence
from model.rollout.rule import RolloutRule, decide
from tests.model.rollout.observations import SCENES, START, TWO, observe, paired

RULE = RolloutRule()
SOON = START + timedelta(minutes=10)


def judge(observations: list[Observation], rule: RolloutRule = RULE, *, minutes: float = 10):
    return decide(live_evidence(observations), rule, started_at=START, now=START + timedelta(minutes=minutes))


@pytest.mark.parametrize("labels", [TWO, SCENES], ids=["2 labels", "6 labels"])
def test_a_worse_challenger_is_aborted(labels: list[str]) -> None:
    # 60 reviewed images: the champion right on 54; the challenger wrong on 18 of them (30%), right alone on 2
    decision = judge(paired(labels, both_right=36, only_champion=18, only_challenger=2, both_wrong=4))
    assert decision.action == "abort"
    assert "significantly worse on 60 reviewed live images" in decision.reason
    assert "right on 38 against the champion's 54" in decision.reason and "the champion stays" in decision.reason


@pytest.mark.parametrize("labels", [TWO, SCENES], ids=["2 labels", "6 labels"])
def test_an_equal_challenger_is_promoted(labels: list[str]) -> None:
    decision = judge(paired(labels, both_right=25, only_champion=3, only_challenger=3, both_wrong=2, unreviewed=40))
    assert decision.action == "promote"
    assert "33 reviewed live images (≥ 30)" in decision.reason and "not significantly worse" in decision.reason


def test_a_challenger_behind_but_not_significantly_waits_for_more_evidence() -> None:
    # champion alone right on 5, challenger alone on 2 of 32: p = 0.23, not significant, but 9.4% behind (> 2%)
    behind = paired(SCENES, both_right=25, only_champion=5, only_challenger=2, both_wrong=0)
    decision = judge(behind)
    assert decision.action == "wait"
    assert decision.reason.startswith("Wait: the challenger is behind on 32 reviewed live images, right on 27 against "
                                      "the champion's 30 (9.4% > the tolerated 2.0%), though not significantly "
                                      "(McNemar p=0.23); time-out in")
    assert judge(behind, RolloutRule(max_regression=0.1)).action == "promote"
    # one image behind is always tolerated (as the gate tolerates one test image)
    assert judge(paired(TWO, both_right=25, only_champion=3, only_challenger=2, both_wrong=0)).action == "promote"
    timed_out = judge(behind, RolloutRule(timeout_hours=2), minutes=120)
    assert timed_out.action == "abort" and "never became enough to promote (the challenger is behind" in \
        timed_out.reason


def test_an_erroring_challenger_is_aborted_on_errors_alone() -> None:
    # no reviewed image at all, a perfect agreement where it answers: 3 failures of 40 (7.5% > 1%)
    observations = [observe("forest", "forest") for _ in range(37)] + [observe("forest", None) for _ in range(3)]
    decision = judge(observations)
    assert decision.action == "abort"
    assert "failed on 3 of 40 shadowed requests (7.5% > the tolerated 1.0%)" in decision.reason


def test_errors_count_only_after_enough_requests() -> None:
    observations = [observe("forest", "forest") for _ in range(18)] + [observe("forest", None)]
    decision = judge(observations)
    assert decision.action == "wait", decision.reason
    assert judge([*observations, observe("sea", "sea")]).action == "abort"  # 1 of 20 = 5%


def test_a_slow_challenger_is_aborted_on_latency() -> None:
    observations = paired(SCENES, both_right=10, only_champion=0, only_challenger=0, both_wrong=0, unreviewed=110,
                          champion_ms=20, challenger_ms=31)
    decision = judge(observations)
    assert decision.action == "abort"
    assert "too slow: p99 31 ms against the champion's 20 ms (1.55× > the tolerated 1.5×)" in decision.reason
    within = paired(SCENES, both_right=10, only_champion=0, only_challenger=0, both_wrong=0, unreviewed=110,
                    champion_ms=20, challenger_ms=29)
    assert judge(within).action == "wait"


def test_latency_counts_only_after_enough_requests() -> None:
    slow = paired(TWO, both_right=5, only_champion=0, only_challenger=0, both_wrong=0, unreviewed=94,
                  champion_ms=20, challenger_ms=200)
    assert judge(slow).action == "wait"  # 99 latencies each, 100 needed
    assert judge([*slow, observe("grass", "grass", champion_ms=20, challenger_ms=200)]).action == "abort"


def test_waiting_says_what_is_missing() -> None:
    observations = paired(SCENES, both_right=10, only_champion=1, only_challenger=1, both_wrong=0, unreviewed=218)
    decision = judge(observations, minutes=35)
    assert decision.action == "wait"
    assert decision.reason == ("Wait: 12 of 30 reviewed live images; or 230 of 500 distinct shadowed images and "
                               "35 min of 60 min; time-out in 7.0 days.")


def test_shadowed_requests_and_time_are_enough_evidence() -> None:
    observations = paired(TWO, both_right=8, only_champion=1, only_challenger=1, both_wrong=0, unreviewed=490)
    early = judge(observations, minutes=59)
    assert early.action == "wait" and "500 of 500 distinct shadowed images and 59 min of 60 min" in early.reason
    decision = judge(observations, minutes=61)
    assert decision.action == "promote"
    assert "500 distinct shadowed images (≥ 500) over 61 min (≥ 60 min)" in decision.reason
    assert judge(observations[:-1], minutes=600).action == "wait"  # 499 requests, however long


def test_one_image_sent_again_and_again_is_one_image_of_evidence() -> None:
    """Traffic counts distinct images: a client replaying one photo 500 times cannot make a challenger "proven"."""
    replayed = [replace(o, image="same") for o in paired(TWO, both_right=0, only_champion=0, only_challenger=0,
                                                          both_wrong=0, unreviewed=500)]
    evidence = live_evidence(replayed)
    assert (evidence.shadowed, evidence.images) == (500, 1)
    decision = decide(evidence, RULE, started_at=START, now=START + timedelta(hours=3))
    assert decision.action == "wait" and "1 of 500 distinct shadowed images" in decision.reason


@pytest.mark.parametrize("labels", [TWO, SCENES], ids=["2 labels", "6 labels"])
def test_a_version_a_person_started_is_promoted_on_reviewed_images_only(labels: list[str]) -> None:
    """An admin may put any registered version — one the gate refused — in front of traffic: no volume of unreviewed
    traffic, and no time-out, promotes it; reviewed live images that show it not worse do."""
    traffic = paired(labels, both_right=10, only_champion=0, only_challenger=0, both_wrong=0, unreviewed=990)
    late = START + timedelta(hours=3)
    waiting = decide(live_evidence(traffic), RULE, started_at=START, now=late, gate_cleared=False)
    assert waiting.action == "wait"
    assert "10 of 30 reviewed live images (a version started by a person" in waiting.reason
    assert decide(live_evidence(traffic), RULE, started_at=START, now=late).action == "promote"  # a gate's candidate
    timeout = RolloutRule(timeout_hours=2, timeout_fallback="promote")
    ended = decide(live_evidence(traffic), timeout, started_at=START, now=late, gate_cleared=False)
    assert ended.action == "abort" and "not for a version the gate never cleared" in ended.reason
    reviewed = paired(labels, both_right=28, only_champion=1, only_challenger=1, both_wrong=0)
    assert decide(live_evidence(reviewed), RULE, started_at=START, now=late, gate_cleared=False).action == "promote"


@pytest.mark.parametrize("fallback", ["abort", "promote"])
def test_the_time_out_decides_by_the_fallback(fallback: str) -> None:
    rule = RolloutRule(timeout_hours=24, timeout_fallback=fallback)  # type: ignore[arg-type]
    observations = paired(SCENES, both_right=5, only_champion=1, only_challenger=0, both_wrong=1, unreviewed=20)
    assert judge(observations, rule, minutes=24 * 60 - 1).action == "wait"
    decision = judge(observations, rule, minutes=24 * 60)
    assert decision.action == fallback
    assert f"at the time-out (24.0 h; the fallback is `{fallback}`)" in decision.reason
    assert "7 of 30 reviewed live images" in decision.reason


def test_a_regression_aborts_even_when_the_fallback_promotes() -> None:
    rule = RolloutRule(timeout_hours=1, timeout_fallback="promote", min_minutes=30, min_shadowed=10_000)
    failing = [observe("sea", None) for _ in range(20)] + [observe("sea", "sea") for _ in range(20)]
    assert judge(failing, rule, minutes=600).action == "abort"


def test_the_rule_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RolloutRule.from_settings(Settings()) == RolloutRule()  # the dataclass's defaults are the settings'
    monkeypatch.setenv("SPROUT_ROLLOUT_MIN_REVIEWED", "12")
    monkeypatch.setenv("SPROUT_ROLLOUT_TIMEOUT_FALLBACK", "promote")
    monkeypatch.setenv("SPROUT_ROLLOUT_MAX_LATENCY_RATIO", "2")
    rule = RolloutRule.from_settings(Settings())
    assert (rule.min_reviewed, rule.timeout_fallback, rule.max_latency_ratio) == (12, "promote", 2.0)
    assert rule.to_dict()["timeout_fallback"] == "promote"


@pytest.mark.parametrize(("env", "value", "message"), [
    ("SPROUT_ROLLOUT_TIMEOUT_FALLBACK", "rollback", "rollout_timeout_fallback"),
    ("SPROUT_ROLLOUT_ALPHA", "0.7", "rollout_alpha"),
    ("SPROUT_ROLLOUT_MAX_LATENCY_RATIO", "0.9", "rollout_max_latency_ratio"),
    ("SPROUT_ROLLOUT_MIN_REVIEWED", "0", "rollout_min_reviewed"),
    ("SPROUT_ROLLOUT_TIMEOUT_HOURS", "0.5", "SPROUT_ROLLOUT_TIMEOUT_HOURS (0.5 h) must be longer than "
                                            "SPROUT_ROLLOUT_MIN_MINUTES (60 min)"),
])
def test_bad_settings_are_refused_clearly(monkeypatch: pytest.MonkeyPatch, env: str, value: str,
                                          message: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings()


# --- properties over random seeds ---------------------------------------------------------------------------------

SEEDS: list[int | None] = [0, 1, 7, 2026, 31337, None]  # None: a fresh random seed, printed (same ids everywhere)


def _seed(seed: int | None) -> int:
    seed = secrets.randbits(32) if seed is None else seed
    print(f"seed={seed}")  # noqa: T201 - the seed of a failing property, to rerun it
    return seed


def _champion(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A random label set (2 to 10 labels), the true labels of n images and the champion's answers on them."""
    labels = [f"label-{i}" for i in range(int(rng.integers(2, 11)))]
    truth = rng.integers(0, len(labels), n)
    right = rng.random(n) < rng.uniform(0.7, 0.95)
    answers = np.where(right, truth, (truth + rng.integers(1, len(labels), n)) % len(labels))
    return labels, truth, answers


def _observations(labels: list[str], truth: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                  rng: np.random.Generator, unreviewed: int) -> list[Observation]:
    reviewed = [observe(labels[a], labels[b], labels[t], champion_confidence=float(rng.uniform(0.4, 1)),
                        challenger_confidence=float(rng.uniform(0.4, 1)), champion_ms=float(rng.uniform(15, 25)),
                        challenger_ms=float(rng.uniform(15, 25)))
                for t, a, b in zip(truth, champion, challenger, strict=True)]
    return reviewed + [observe(labels[0], labels[0]) for _ in range(unreviewed)]


@pytest.mark.parametrize("seed", SEEDS)
def test_an_identical_challenger_is_never_aborted_for_accuracy(seed: int | None) -> None:
    seed = _seed(seed)
    rng = np.random.default_rng(seed)
    labels, truth, champion = _champion(rng, 80)
    for n in range(1, 81):
        observations = _observations(labels, truth[:n], champion[:n], champion[:n], rng, int(rng.integers(0, 50)))
        decision = judge(observations)
        assert decision.action != "abort", (seed, n, decision.reason)
        assert decision.action == ("promote" if n >= RULE.min_reviewed else "wait"), (seed, n, decision.reason)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_challenger_wrong_on_30_percent_more_images_is_aborted_at_60_reviewed(seed: int | None) -> None:
    fresh, seed = seed is None, _seed(seed)
    rng = np.random.default_rng(seed)
    n = 60
    labels, truth, champion = _champion(rng, n)
    k = len(labels)
    champion_right = np.flatnonzero(champion == truth)
    champion_wrong = np.flatnonzero(champion != truth)
    worse = rng.choice(champion_right, size=round(0.3 * n), replace=False)  # wrong where the champion is right
    # swaps that leave the net loss at 30%: right where the champion is wrong, as often wrong where it is right
    spare = np.setdiff1d(champion_right, worse)
    swaps = int(rng.integers(0, min(len(champion_wrong), len(spare)) + 1))
    fixed = rng.choice(champion_wrong, size=swaps, replace=False)
    broken = rng.choice(spare, size=swaps, replace=False)
    challenger = champion.copy()
    wrong = np.concatenate([worse, broken]).astype(int)
    challenger[wrong] = (truth[wrong] + rng.integers(1, k, len(wrong))) % k
    challenger[fixed] = truth[fixed]
    observations = _observations(labels, truth, champion, challenger, rng, 0)
    ev = live_evidence(observations)
    assert ev.reviewed == n and ev.only_champion_right - ev.only_challenger_right == round(0.3 * n)
    decision = decide(ev, RULE, started_at=START, now=SOON)
    assert decision.action == "abort", (seed, k, swaps, decision.reason)
    assert "significantly worse" in decision.reason
    if fresh:  # in a random order a prefix can, rarely, hold few of its losses (4 of 1500 seeds measured)
        return
    # judged after every review, as the images come: never promoted on the way
    for i in range(1, n + 1):
        decision = judge(observations[:i])
        assert decision.action != "promote", (seed, k, swaps, i, decision.reason)
        if decision.action == "abort":
            break
