"""Benchmark: how often the rollout rule (model/rollout/rule.py, default settings) aborts or promotes challengers of
known quality, judged on reviewed live images as they arrive.

Simulated reviewed pairs (the rule sees counts, never images): per image a true label among k, the champion right
with probability 0.85, and the challenger's answer drawn so that a share ``d`` of the images is discordant in
equal halves plus a further share ``loss`` where only the champion is right. Each run feeds the images one by one
to ``live_evidence`` and ``decide`` — a judgement after every review, the most looks a judging schedule can take
(repeated looks at a significance test raise its false-alarm rate) — until the rule stops waiting (promotion at
``SPROUT_ROLLOUT_MIN_REVIEWED`` = 30 reviewed pairs, or later while the challenger is behind by more than
``SPROUT_ROLLOUT_MAX_REGRESSION``), at most 300 reviewed pairs; it also judges once, at 30, for comparison. It
prints, per challenger and label count: the share aborted (for an equal challenger: false aborts, against
``alpha``), promoted, and the reviewed pairs at the decision — for the default rule and for the rule without the
tolerance (``max_regression`` = 1: promoted whenever not significantly worse).

    python bench/rollout_rule.py [--runs 500] [--labels 2,6] [--seed N]
"""

from __future__ import annotations

import argparse
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.rollout.evidence import Observation, live_evidence  # noqa: E402
from model.rollout.rule import RolloutRule, decide  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_PAIRS = 300
CHAMPION_ACCURACY = 0.85
CHALLENGERS = {  # name: (discordant share in equal halves, further share only the champion gets right)
    "equal, 10% discordant": (0.10, 0.0),
    "equal, 20% discordant": (0.20, 0.0),
    "equal, 40% discordant": (0.40, 0.0),
    "5% worse": (0.10, 0.05),
    "10% worse": (0.10, 0.10),
    "30% worse": (0.10, 0.30),
}


def _image(rng: np.random.Generator, k: int, discordant: float, loss: float) -> Observation:
    truth = int(rng.integers(k))

    def wrong() -> int:
        return (truth + int(rng.integers(1, k))) % k

    u = rng.random()
    if u < discordant / 2 + loss:
        champion, challenger = truth, wrong()
    elif u < discordant + loss:
        champion, challenger = wrong(), truth
    elif rng.random() < (CHAMPION_ACCURACY - discordant / 2 - loss) / (1 - discordant - loss):
        champion = challenger = truth
    else:
        champion, challenger = wrong(), wrong()
    return Observation(champion_label=str(champion), champion_confidence=0.8, champion_latency_ms=20.0,
                       challenger_label=str(challenger), challenger_confidence=0.8, challenger_latency_ms=20.0,
                       challenger_error=None, reviewed_label=str(truth), at=START)


def _run(rng: np.random.Generator, k: int, discordant: float, loss: float, rule: RolloutRule) -> tuple[str, int, str]:
    """(the first decision other than wait, the reviewed pairs then, the decision of one look at min_reviewed)."""
    observations: list[Observation] = []
    now = START + timedelta(minutes=1)
    once = "wait"
    while len(observations) < MAX_PAIRS:
        observations.append(_image(rng, k, discordant, loss))
        action = decide(live_evidence(observations), rule, started_at=START, now=now).action
        if len(observations) == rule.min_reviewed:
            once = action
        if action != "wait" and len(observations) >= rule.min_reviewed:
            return action, len(observations), once
        if action != "wait" and once == "wait":  # decided early: what one look at min_reviewed would say
            extra = [_image(rng, k, discordant, loss) for _ in range(rule.min_reviewed - len(observations))]
            once = decide(live_evidence(observations + extra), rule, started_at=START, now=now).action
            return action, len(observations), once
    return "wait", MAX_PAIRS, once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--labels", default="2,6")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = secrets.randbits(32) if args.seed is None else args.seed
    rng = np.random.default_rng(seed)
    print(f"seed {seed}; {args.runs} runs per row; champion accuracy {CHAMPION_ACCURACY}")
    for title, rule in (("the default rule", RolloutRule()),
                        ("without the tolerance", RolloutRule(max_regression=1.0))):
        print(f"\n{title}: {rule.min_reviewed} reviewed pairs, alpha {rule.alpha}, max regression "
              f"{rule.max_regression}")
        print(f"{'challenger':<24} {'labels':>6} {'aborted':>8} {'promoted':>9} {'pairs (median, p90)':>20} "
              f"{'aborted, one look at 30':>24}")
        for name, (discordant, loss) in CHALLENGERS.items():
            for k in (int(x) for x in args.labels.split(",")):
                runs = [_run(rng, k, discordant, loss, rule) for _ in range(args.runs)]
                aborted = np.mean([action == "abort" for action, _, _ in runs])
                promoted = np.mean([action == "promote" for action, _, _ in runs])
                pairs = np.array([n for _, n, _ in runs])
                once = np.mean([action == "abort" for _, _, action in runs])
                print(f"{name:<24} {k:>6} {aborted:>8.1%} {promoted:>9.1%} "
                      f"{f'{np.median(pairs):.0f}, {np.percentile(pairs, 90):.0f}':>20} {once:>24.1%}")


if __name__ == "__main__":
    main()
