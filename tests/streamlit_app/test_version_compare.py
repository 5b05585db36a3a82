"""The comparison of two versions as rows and sentences (streamlit_app/version_compare.py), on the shape of
``GET /models``'s versions: 2 labels, 6 labels, a label only one version knows, versions without per-class data."""

from __future__ import annotations

from typing import Any

import pytest

from streamlit_app.version_compare import (
    class_comparison,
    default_pair,
    metric_difference,
    pairing_note,
    recall_changes,
    summary_rows,
)

SCENES = ["buildings", "forest", "glacier", "mountain", "sea", "street"]


def version(name: str, labels: list[str], correct: int, *, run_id: int, wrong: int = 1,
            evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    """A version whose confusion matrix has ``correct`` right answers per label and ``wrong`` images of each label
    taken for the next one, with the metrics computed from it."""
    k = len(labels)
    matrix = [[correct if i == j else wrong if j == (i + 1) % k else 0 for j in range(k)] for i in range(k)]
    support = correct + wrong
    per_class = {label: {"precision": correct / support, "recall": correct / support, "f1": correct / support,
                         "support": support} for label in labels}
    return {"version": name, "created_at": "2026-12-01T10:00:00+00:00", "run_id": run_id, "backbone": "lite0",
            "metrics": {"accuracy": correct / support, "macro_f1": correct / support, "log_loss": 0.25,
                        "n": k * support, "per_class": per_class,
                        "confusion_matrix": {"labels": labels, "matrix": matrix}},
            "evidence": evidence}


def test_the_champion_is_compared_with_the_newest_other_version() -> None:
    versions = [version(v, ["a", "b"], 9, run_id=int(v)) for v in ("3", "2", "1")]
    assert default_pair(versions, "1") == ("1", "3")
    assert default_pair(versions, "3") == ("3", "2")
    assert default_pair(versions, None) == ("3", "2")
    assert default_pair(versions[:1], "3") is None


def test_summary_rows_give_both_values_and_the_difference_in_points() -> None:
    a, b = version("1", ["dandelion", "grass"], 8, run_id=1, wrong=2), version("2", ["dandelion", "grass"], 9,
                                                                                run_id=4)
    rows = {row[""]: row for row in summary_rows(a, b)}
    assert rows["test accuracy"] == {"": "test accuracy", "v1": "80.0%", "v2": "90.0%", "v2 − v1": "+10.0 points"}
    assert rows["test images"]["v1"] == "20" and rows["test images"]["v2 − v1"] == "+0"
    assert rows["training run"]["v1"] == "1" and rows["training run"]["v2"] == "4"
    assert rows["trained"]["v1"] == "2026-12-01 10:00"
    assert list(rows) == ["test accuracy", "macro F1", "log loss (lower is better)", "test images", "backbone",
                          "training run", "trained"]


@pytest.mark.parametrize("labels", [["dandelion", "grass"], SCENES], ids=["2 labels", "6 labels"])
def test_per_class_rows_pair_each_label_with_its_difference(labels: list[str]) -> None:
    a, b = version("1", labels, 6, run_id=1), version("2", labels, 9, run_id=2)
    rows = class_comparison(a, b)
    assert [row["label"] for row in rows] == labels
    for row in rows:
        assert row["recall v1"] == pytest.approx(6 / 7) and row["recall v2"] == pytest.approx(0.9)
        assert row["recall Δ"] == pytest.approx(round((0.9 - 6 / 7) * 100, 1))
        assert row["test images v1"] == 7 and row["test images v2"] == 10 and row["known by"] == "both"


def test_a_label_only_one_version_knows_is_missing_for_the_other() -> None:
    a, b = version("1", SCENES[:5], 8, run_id=1), version("2", SCENES, 8, run_id=2)
    rows = {row["label"]: row for row in class_comparison(a, b)}
    assert list(rows) == SCENES  # a's order, then the label only b knows
    new = rows["street"]
    assert new["known by"] == "v2" and new["recall v1"] is None and new["recall Δ"] is None
    assert new["recall v2"] == pytest.approx(8 / 9) and new["test images v1"] is None
    lines = recall_changes(a, b)
    assert "street: only v2 knows this label" in lines and len(lines) == 6
    assert lines[0] == "buildings: recall 88.9% against 88.9% (+0.0 points)"
    # and the other way round: the newer version dropped one
    assert {row["label"]: row["known by"] for row in class_comparison(b, a)}["street"] == "v2"


def test_versions_without_per_class_metrics_compare_only_their_totals() -> None:
    a, b = version("1", ["a", "b"], 8, run_id=1), version("2", ["a", "b"], 9, run_id=2)
    del a["metrics"]["per_class"], a["metrics"]["confusion_matrix"]
    assert recall_changes(a, b) == []
    assert [row["known by"] for row in class_comparison(a, b)] == ["v2", "v2"]
    said = metric_difference("2", b["metrics"], "1", a["metrics"])
    assert said.startswith("v2: test accuracy 90.0% against 88.9% for v1 (+1.1 points)")


def test_versions_of_different_runs_are_said_not_to_be_a_paired_comparison() -> None:
    a, b = version("1", ["a", "b"], 8, run_id=1), version("2", ["a", "b"], 9, run_id=3)
    note = pairing_note(a, b)
    assert note.startswith("Not a paired comparison: v1 and v2 were each measured on the test images of their own "
                           "training run (18 and 20 images)")
    assert "did compare them" not in note
    b["evidence"] = {"champion_version": "1", "paired": {"both": 15, "candidate_only": 3, "champion_only": 1,
                                                         "neither": 1}}
    assert pairing_note(a, b).endswith("Run 3 did compare them on the same 20 test images (when it gated v2): both "
                                       "right on 15, only v2 on 3, only v1 on 1, neither on 1.")
    assert "did compare them" in pairing_note(b, a)  # either order
    c = version("3", ["a", "b"], 9, run_id=5, evidence={"champion_version": "2", "paired": b["evidence"]["paired"]})
    assert "did compare them" not in pairing_note(a, c)  # c's run compared it with v2, not v1
