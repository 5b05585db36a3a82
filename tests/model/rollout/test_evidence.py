"""Live evidence: the paired counts and McNemar's test on reviewed live images, and the traffic figures (agreement,
confidence shift, errors, p99 latency) on all shadowed requests, for 2 labels and for 6."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from model.rollout.evidence import LiveEvidence, describe, live_evidence
from tests.model.rollout.observations import SCENES, TWO, observe, paired


def test_two_labels_hand_counted() -> None:
    observations = [
        observe("dandelion", "dandelion", "dandelion", champion_ms=10, challenger_ms=30),  # both right
        observe("dandelion", "grass", "dandelion", champion_ms=12, challenger_ms=31),  # champion alone right
        observe("grass", "dandelion", "dandelion", champion_ms=14, challenger_ms=32),  # challenger alone right
        observe("grass", "grass", "dandelion", champion_ms=16, challenger_ms=33),  # both wrong
        observe("grass", "grass", None, champion_ms=18, challenger_ms=34),  # not reviewed: traffic only
        observe("grass", None, "grass", champion_ms=20),  # the challenger failed: not a pair
    ]
    ev = live_evidence(observations)
    assert (ev.shadowed, ev.answered, ev.reviewed) == (6, 5, 4)
    assert (ev.both_right, ev.only_champion_right, ev.only_challenger_right, ev.both_wrong) == (1, 1, 1, 1)
    assert ev.champion_accuracy == ev.challenger_accuracy == 0.5
    assert ev.p_worse == ev.p_better == pytest.approx(0.75)  # 1 of 2 discordant pairs each way
    assert ev.agreement == pytest.approx(3 / 5)
    assert ev.confidence_shift == pytest.approx(0.75 - 0.8)
    assert (ev.challenger_errors, ev.challenger_error_rate) == (1, pytest.approx(1 / 6))
    assert ev.champion_p99_ms == pytest.approx(np.percentile([10, 12, 14, 16, 18, 20], 99))
    assert ev.challenger_p99_ms == pytest.approx(np.percentile([30, 31, 32, 33, 34], 99))
    assert (ev.champion_latencies, ev.challenger_latencies) == (6, 5)


def test_six_labels_mcnemar_one_sided_each_way() -> None:
    observations = paired(SCENES, both_right=40, only_champion=9, only_challenger=2, both_wrong=6, unreviewed=100)
    ev = live_evidence(observations)
    assert (ev.reviewed, ev.shadowed) == (57, 157)
    assert (ev.both_right, ev.only_champion_right, ev.only_challenger_right, ev.both_wrong) == (40, 9, 2, 6)
    assert ev.champion_accuracy == pytest.approx(49 / 57)
    assert ev.challenger_accuracy == pytest.approx(42 / 57)
    assert ev.p_worse == pytest.approx(binomtest(9, 11, 0.5, alternative="greater").pvalue)
    assert ev.p_worse < 0.05 < ev.p_better
    assert ev.p_better == pytest.approx(binomtest(2, 11, 0.5, alternative="greater").pvalue)
    # on 6 labels both models can be wrong with different labels: that is a disagreement, not a discordant pair
    assert ev.agreement == pytest.approx((157 - 11 - 6) / 157)


def test_labels_are_data_any_names() -> None:
    labels = [f"class {i} — ünïcode" for i in range(10)]
    ev = live_evidence(paired(labels, both_right=20, only_champion=3, only_challenger=5, both_wrong=2))
    assert (ev.reviewed, ev.only_champion_right, ev.only_challenger_right) == (30, 3, 5)


def test_no_discordant_pairs_is_no_evidence_either_way() -> None:
    ev = live_evidence(paired(TWO, both_right=30, only_champion=0, only_challenger=0, both_wrong=3))
    assert ev.p_worse == ev.p_better == 1.0


def test_empty_and_all_failed() -> None:
    empty = live_evidence([])
    assert empty.shadowed == empty.reviewed == 0
    assert empty.champion_accuracy is empty.agreement is empty.challenger_error_rate is empty.champion_p99_ms is None
    assert describe(empty) == "No live traffic compared yet."
    failed = live_evidence([observe("sea", None, "sea") for _ in range(5)])
    assert (failed.shadowed, failed.answered, failed.reviewed, failed.challenger_errors) == (5, 0, 0, 5)
    assert failed.challenger_error_rate == 1.0
    assert failed.agreement is None and failed.challenger_p99_ms is None and failed.champion_p99_ms == 20.0
    assert "5 errors (100.0%)" in describe(failed)


def test_to_dict_is_json_and_reads_back() -> None:
    ev = live_evidence(paired(SCENES, both_right=5, only_champion=1, only_challenger=2, both_wrong=1, unreviewed=3))
    stored = json.loads(json.dumps(ev.to_dict()))
    assert stored["only_challenger_right"] == 2 and stored["shadowed"] == 12
    assert LiveEvidence.from_dict(stored) == ev


def test_describe_in_plain_words() -> None:
    observations = paired(SCENES, both_right=47, only_champion=2, only_challenger=4, both_wrong=4,
                          unreviewed=755, champion_ms=38, challenger_ms=41)
    text = describe(live_evidence(observations))
    assert text.startswith("On 57 reviewed live images the challenger was right on 51 and the champion on 49 "
                           "(challenger alone right on 4, champion alone on 2; McNemar p=0.34): not significantly "
                           "different.")
    assert "over 812 shadowed requests; challenger p99 41 ms vs 38 ms; 0 errors." in text
    worse = describe(live_evidence(paired(TWO, both_right=30, only_champion=12, only_challenger=1, both_wrong=2)))
    assert "the challenger is significantly worse" in worse
    better = describe(live_evidence(paired(TWO, both_right=30, only_champion=1, only_challenger=12, both_wrong=2)))
    assert "the challenger is significantly better" in better
    assert describe(live_evidence([observe("sea", "sea")])).startswith("No reviewed live image yet. Agreement 100%")
