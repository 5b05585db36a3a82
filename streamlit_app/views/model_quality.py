"""A section of the Models page (no page of its own): how a version does on each label of its test split — the
per-class table (precision, recall, F1, support, the label it is most often mistaken for) and the k x k confusion
matrix as a heatmap with a table beside it. Readable for 2 labels or 10."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

RECENT_VERSIONS = 8  # the versions offered to choose from


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _has_classes(version: dict[str, Any]) -> bool:
    metrics = version.get("metrics") or {}
    return bool(metrics.get("per_class")) and bool((metrics.get("confusion_matrix") or {}).get("labels"))


def class_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per label, in the confusion matrix's order: precision, recall, F1, support, and the label its test
    images were most often predicted as instead. Undefined ones are None ("—"), not 0: recall and F1 of a label
    without test images, precision of one never predicted."""
    labels, matrix = metrics["confusion_matrix"]["labels"], metrics["confusion_matrix"]["matrix"]
    rows = []
    for i, label in enumerate(labels):
        values = metrics["per_class"].get(label, {})
        support, predicted = sum(matrix[i]), sum(row[i] for row in matrix)
        wrong = [(count, labels[j]) for j, count in enumerate(matrix[i]) if j != i and count]
        count, mistaken = max(wrong, key=lambda pair: pair[0]) if wrong else (0, None)  # a tie: the first label
        rows.append({"label": label, "precision": values.get("precision") if predicted else None,
                     "recall": values.get("recall") if support else None,
                     "F1": values.get("f1") if support else None, "support": values.get("support", support),
                     "most confused with": f"{mistaken} ({count})" if mistaken else "—"})
    return rows


def confusion_frame(confusion: dict[str, Any]) -> pd.DataFrame:
    """The confusion matrix as a table: rows the true labels, columns the predicted ones."""
    labels = confusion["labels"]
    return pd.DataFrame(confusion["matrix"], index=pd.Index(labels, name="true \\ predicted"), columns=labels)


def confusion_chart(confusion: dict[str, Any]) -> alt.LayerChart:
    """A heatmap: each cell's share of its row (the true label's test images) as colour, the count as text."""
    labels, k = confusion["labels"], len(confusion["labels"])
    cells = []
    for i, true in enumerate(labels):
        total = sum(confusion["matrix"][i])
        cells += [{"true": true, "predicted": predicted, "count": count, "share": count / total if total else 0.0}
                  for predicted, count in zip(labels, confusion["matrix"][i], strict=True)]
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("predicted:N", sort=labels, title="predicted",
                axis=alt.Axis(labelAngle=-40, labelLimit=120, labelOverlap=False, orient="top")),
        y=alt.Y("true:N", sort=labels, title="true", axis=alt.Axis(labelLimit=120, labelOverlap=False)))
    heat = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("share:Q", scale=alt.Scale(domain=[0, 1], range=["#f7fcf5", "#00441b"]),
                        legend=alt.Legend(format="%", title="of the row")),
        tooltip=[alt.Tooltip("true:N"), alt.Tooltip("predicted:N"), alt.Tooltip("count:Q"),
                 alt.Tooltip("share:Q", format=".0%", title="share of the true label")])
    text = base.mark_text(fontSize=13 if k <= 8 else 11).encode(
        text="count:Q", color=alt.condition(alt.datum.share > 0.5, alt.value("white"), alt.value("black"))
    ).transform_filter(alt.datum.count > 0)  # empty cells stay blank: the mistakes stand out
    cell = 48 if k <= 8 else 36
    return (heat + text).properties(width=alt.Step(cell), height=alt.Step(cell))


def quality_section(versions: list[dict[str, Any]], champion: str | None) -> None:
    """Choose a version (the champion first) and see its per-class table and confusion matrix."""
    known = sorted((v for v in versions if _has_classes(v)), key=lambda v: _version_key(v["version"]),
                   reverse=True)[:RECENT_VERSIONS]
    if not known:
        return
    st.subheader("Per label", anchor=False)
    names = [v["version"] for v in known]
    chosen = st.segmented_control(
        "Version", names, default=champion if champion in names else names[0],
        key=f"quality_version-{champion}",  # a new champion (a rollback) selects itself again
        format_func=lambda v: f"v{v}" + (" (champion)" if v == champion else "")) or names[0]
    metrics = next(v for v in known if v["version"] == chosen)["metrics"]
    st.caption(f"Version {chosen} on its {metrics.get('n', 0)} held-out test images. Recall: the share of a "
               "label's images it found; precision: the share of its answers with that label that were right "
               "(empty: no test image of the label, or none predicted as it).")
    st.dataframe(pd.DataFrame(class_rows(metrics)), hide_index=True, width="stretch", column_config={
        "precision": st.column_config.NumberColumn(format="percent"),
        "recall": st.column_config.NumberColumn(format="percent"),
        "F1": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0),
        "support": st.column_config.NumberColumn(format="%d", help="Test images of this label"),
        "most confused with": st.column_config.TextColumn(
            help="The label its test images were most often predicted as instead (how many)"),
    })
    confusion = metrics["confusion_matrix"]
    st.caption("Confusion matrix: each row a true label, each column the label predicted; the colour is the share "
               "of the row.")
    st.altair_chart(confusion_chart(confusion), width="content")
    with st.expander("Confusion matrix as a table"):
        st.dataframe(confusion_frame(confusion))
