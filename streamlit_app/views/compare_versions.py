"""A section of the Models page (no page of its own): any two registered versions side by side — their test
metrics, backbone, run and date, each label's precision/recall/F1 with the difference, and both confusion
matrices — with an honest note when they were measured on different test images."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from streamlit_app import ui
from streamlit_app.version_compare import (
    MISSING,
    class_comparison,
    default_pair,
    has_classes,
    pairing_note,
    summary_rows,
    version_key,
)
from streamlit_app.views.model_quality import confusion_chart


def _shown(column: str, value: Any) -> str:
    """A cell as text: a share in percent, a difference in points, a count; "—" for None."""
    if value is None:
        return MISSING
    if column.endswith(" Δ"):
        return f"{value:+.1f}"
    if column.startswith(("precision", "recall", "F1")):
        return ui.percent(value)
    return str(value)


def _class_table(rows: list[dict[str, Any]], va: str, vb: str) -> None:
    shown = [{column: _shown(column, value) if column != "label" else value for column, value in row.items()}
             for row in rows]
    narrow = {column: st.column_config.TextColumn(width="small") for column in shown[0] if column != "label"}
    st.dataframe(pd.DataFrame(shown), hide_index=True, width="stretch", column_config=narrow | {
        **{f"{m} Δ": st.column_config.TextColumn(width="small", help=f"{vb} − {va}, in points")
           for m in ("precision", "recall", "F1")},
        "known by": st.column_config.TextColumn(help="A label only one version knows is — for the other")})


def compare_section(versions: list[dict[str, Any]], champion: str | None) -> None:
    """Two selectboxes (the champion against the newest other version by default) and the comparison."""
    pair = default_pair(versions, champion)
    if pair is None:
        return
    st.subheader("Compare two versions", anchor=False)
    by_version = {v["version"]: v for v in versions}
    names = sorted(by_version, key=version_key, reverse=True)

    def name(v: str) -> str:
        return f"v{v}" + (" (champion)" if v == champion else "")

    left, right = st.columns(2)
    a = left.selectbox("Version", names, index=names.index(pair[0]), key="compare-a", format_func=name)
    b = right.selectbox("against", names, index=names.index(pair[1]), key="compare-b", format_func=name)
    if a == b:
        st.caption("Choose two different versions.")
        return
    first, second = by_version[a], by_version[b]
    st.caption(pairing_note(first, second))
    st.dataframe(pd.DataFrame(summary_rows(first, second)), hide_index=True, width="content")
    rows = class_comparison(first, second)
    if not rows:
        st.caption("Neither version recorded per-label metrics (trained before they were kept).")
        return
    st.caption(f"Per label: precision, recall and F1 of v{a} and v{b}, and the difference (v{b} − v{a}) in "
               "points; — where a version does not know the label or the value is undefined.")
    _class_table(rows, f"v{a}", f"v{b}")
    columns = st.columns(2)
    for column, version in zip(columns, (first, second), strict=True):
        with column:
            st.markdown(f"**Confusion matrix of v{version['version']}**")
            if has_classes(version.get("metrics")):
                st.altair_chart(confusion_chart(version["metrics"]["confusion_matrix"]), width="content")
            else:
                st.caption("Not recorded for this version.")
