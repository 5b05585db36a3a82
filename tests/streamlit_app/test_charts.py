"""Folding per-label series into the top labels and "other"; the accuracy chart zoomed to its data."""

from __future__ import annotations

import pytest

from streamlit_app.charts import accuracy_lines, fold_labels, other_name, top_and_other


def test_ten_labels_fold_into_the_top_five_and_one_other_bar() -> None:
    values = {f"label{i}": float(i) for i in range(10)}
    folded = top_and_other(values)
    assert list(folded) == ["label9", "label8", "label7", "label6", "label5", "other (5 labels)"]
    assert folded["other (5 labels)"] == pytest.approx(0 + 1 + 2 + 3 + 4)
    assert sum(folded.values()) == pytest.approx(sum(values.values()))


def test_few_labels_are_not_folded_and_one_leftover_keeps_its_bar() -> None:
    assert top_and_other({"dandelion": 0.9, "grass": 0.1}) == {"dandelion": 0.9, "grass": 0.1}
    six = {label: float(n) for n, label in enumerate("abcdef", start=1)}
    assert list(top_and_other(six)) == ["f", "e", "d", "c", "b", "a"]  # folding "a" alone would hide it for nothing
    assert list(top_and_other(six, top=3)) == ["f", "e", "d", "other (3 labels)"]


def test_kept_labels_stay_out_of_other_and_ties_go_by_name() -> None:
    values = {"sea": 50.0, "forest": 50.0, "glacier": 40.0, "mountain": 40.0, "street": 30.0, "buildings": 20.0,
              "desert": 5.0, "jungle": 3.0}
    mapping = fold_labels(values, top=2, keep=["desert"])
    assert [label for label, bar in mapping.items() if bar == label] == ["forest", "sea", "desert"]
    assert {bar for bar in mapping.values() if bar.startswith("other")} == {other_name(5)}
    folded = top_and_other(values, top=2, keep=["desert"])
    assert list(folded) == ["forest", "sea", "desert", "other (5 labels)"]


def test_a_label_named_like_the_other_bar_keeps_its_own() -> None:
    values = {"other (2 labels)": 10.0, "a": 9.0, "b": 1.0, "c": 1.0}
    folded = top_and_other(values, top=2)
    assert folded == {"other (2 labels)": 10.0, "a": 9.0, "other (2 labels)*": 2.0}
    assert other_name(1) == "other (1 label)"


def test_the_accuracy_chart_zooms_to_its_data() -> None:
    rows = [{"version": "v1", "test accuracy": 0.90, "cross-validated accuracy": 0.93},
            {"version": "v2", "test accuracy": 0.95, "cross-validated accuracy": None}]
    spec = accuracy_lines(rows).to_dict()
    assert spec["encoding"]["y"]["scale"]["domain"] == pytest.approx([0.88, 1.0])  # not 0 to 1: 0.90 vs 0.95 shows
    assert spec["encoding"]["x"]["sort"] == ["v1", "v2"]
