"""The Models page's per-label rows and confusion table, from a version's metrics as /models returns them."""

from __future__ import annotations

from streamlit_app.views.model_quality import class_rows, confusion_frame

METRICS = {
    "n": 9,
    "per_class": {
        "forest": {"precision": 0.75, "recall": 1.0, "f1": 0.857, "support": 3},
        "sea": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        "street": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "support": 6},
    },
    "confusion_matrix": {"labels": ["forest", "sea", "street"], "matrix": [[3, 0, 0], [0, 0, 0], [1, 2, 3]]},
}


def test_rows_name_the_label_each_is_most_confused_with_and_leave_undefined_metrics_empty() -> None:
    rows = {row["label"]: row for row in class_rows(METRICS)}
    assert list(rows) == ["forest", "sea", "street"]
    assert rows["forest"]["most confused with"] == "—" and rows["forest"]["recall"] == 1.0
    assert rows["street"]["most confused with"] == "sea (2)" and rows["street"]["support"] == 6
    # sea: no test image (recall, F1 undefined) but predicted twice, wrongly (precision 0 is a fact)
    assert rows["sea"]["recall"] is None and rows["sea"]["F1"] is None and rows["sea"]["precision"] == 0.0


def test_the_confusion_table_has_the_labels_on_both_axes() -> None:
    frame = confusion_frame(METRICS["confusion_matrix"])
    assert list(frame.index) == list(frame.columns) == ["forest", "sea", "street"]
    assert frame.loc["street", "sea"] == 2 and int(frame.to_numpy().sum()) == METRICS["n"]
