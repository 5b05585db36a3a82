"""A section of the Review page (no page of its own): the approved samples' balance over the labels from
``/admin/stats`` — a warning per under-represented label, each label's approved samples by split (the top labels,
the under-represented ones and "other"), and the full table of shares."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from streamlit_app.charts import fold_labels

SPLITS = ("train", "val", "test")


def balance_frame(classes: list[dict[str, Any]]) -> pd.DataFrame:
    """One bar per label (under-represented ones always their own, the rest beyond the top five folded into
    "other"), one row per (bar, split) with its approved samples."""
    counts = {c["label"]: float(c["count"]) for c in classes}
    bars = fold_labels(counts, keep=[c["label"] for c in classes if c["under_represented"]])
    rows = [{"label": bars[c["label"]], "split": split, "samples": c["split_counts"].get(split, 0)}
            for c in classes for split in SPLITS]
    frame = pd.DataFrame(rows, columns=["label", "split", "samples"])
    return frame.groupby(["label", "split"], as_index=False, sort=False)["samples"].sum()


def share_rows(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table: every label with its approved samples, share, split counts and the under-represented flag."""
    return [{"label": c["label"], "approved": c["count"], "share": c["share"],
             **{split: c["split_counts"].get(split, 0) for split in SPLITS},
             "under-represented": c["under_represented"]} for c in classes]


def class_balance_section(balance: dict[str, Any] | None) -> None:
    """Warnings, the per-label bars and the table (nothing before anything is approved)."""
    balance = balance or {}
    classes, warnings = balance.get("classes") or [], balance.get("warnings") or []
    if not classes:
        return
    for warning in warnings:
        st.warning(warning, icon=":material/balance:")
    total = sum(c["count"] for c in classes)
    with st.expander(f"Class balance of the {total} approved samples ({len(classes)} labels)"):
        frame = balance_frame(classes)
        order = list(dict.fromkeys(frame["label"]))
        bars = alt.Chart(frame).mark_bar().encode(
            x=alt.X("sum(samples):Q", title="approved samples"),
            y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=160)),
            color=alt.Color("split:N", sort=list(SPLITS), scale=alt.Scale(scheme="tableau10")),
            order=alt.Order("split_order:Q"),
            tooltip=[alt.Tooltip("label:N"), alt.Tooltip("split:N"), alt.Tooltip("samples:Q")],
        ).transform_calculate(split_order="indexof(['train', 'val', 'test'], datum.split)")
        st.altair_chart(bars.properties(height=30 * len(order) + 40), width="stretch")
        st.caption(f"A label is under-represented below {balance.get('min_count', 0):.1f} approved samples: a "
                   "fraction (SPROUT_IMBALANCE_MIN_RATIO) of the mean per label.")
        st.dataframe(pd.DataFrame(share_rows(classes)), hide_index=True, width="stretch", column_config={
            "share": st.column_config.NumberColumn(format="percent", help="Of all approved samples"),
            "under-represented": st.column_config.CheckboxColumn(),
        })
