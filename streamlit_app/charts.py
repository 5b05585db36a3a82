"""Per-label charts stay readable with any number of labels: the top labels by value, the rest folded into one
"other" bar; accuracy lines zoomed to their data. Pure functions (no Streamlit calls): the pages chart what these
return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import altair as alt
import pandas as pd

TOP_LABELS = 5


def other_name(n: int) -> str:
    """The folded bar's name: "other (3 labels)"."""
    return f"other ({n} label{'s' if n != 1 else ''})"


def fold_labels(values: Mapping[str, float], top: int = TOP_LABELS, keep: Iterable[str] = ()) -> dict[str, str]:
    """Each label's bar: itself for the ``top`` largest values (ties by name) and the labels in ``keep``, the
    "other" bar for the rest. Folding a single label would hide it for nothing, so up to ``top + 1`` labels all
    keep their own bar."""
    kept = set(keep)
    ranked = sorted(values, key=lambda label: (-values[label], label))
    rest = [label for label in ranked[top:] if label not in kept]
    if len(rest) < 2:
        return {label: label for label in ranked}
    other = other_name(len(rest))
    while other in values:  # a label of that very name keeps its own bar
        other += "*"
    return {label: other if label in rest else label for label in ranked}


def top_and_other(values: Mapping[str, float], top: int = TOP_LABELS, keep: Iterable[str] = ()) -> dict[str, float]:
    """``values`` with all but the ``top`` largest (and ``keep``) summed into one "other" entry, largest first and
    "other" last."""
    folded: dict[str, float] = {}
    for label, bar in fold_labels(values, top, keep).items():
        folded[bar] = folded.get(bar, 0.0) + values[label]
    others = [bar for bar in folded if bar not in values]
    return {bar: folded[bar] for bar in sorted(folded, key=lambda bar: (bar in others, -folded[bar], bar))}


def accuracy_lines(rows: list[dict[str, Any]]) -> alt.Chart:
    """Accuracy per version, one line per measure, the y axis zoomed to the data (0.90 against 0.95 must show)."""
    frame = pd.DataFrame(rows).melt(id_vars="version", var_name="measure", value_name="accuracy").dropna()
    low = float(frame["accuracy"].min()) if len(frame) else 0.0
    domain = [max(0.0, low - 0.02), 1.0]
    order = [row["version"] for row in rows]
    return alt.Chart(frame).mark_line(point=True).encode(
        x=alt.X("version:N", sort=order, title="version"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=domain, zero=False), axis=alt.Axis(format="%")),
        color=alt.Color("measure:N", title=None),
        tooltip=["version", "measure", alt.Tooltip("accuracy:Q", format=".1%")])
