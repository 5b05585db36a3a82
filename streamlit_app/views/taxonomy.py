"""A section of the Models page (no page of its own): the labels in use and their changes for reviewers; for admins,
rename a label, merge it into another or retire it, each confirmed before it is sent. The API makes the change in
one audited transaction and asks Airflow for a retrain."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError

OPERATIONS = {"rename": "Rename", "merge": "Merge into another label", "retire": "Retire"}
DONE = "taxonomy-done"
CONSEQUENCES = {
    "rename": "its {n} approved samples and the pending ones predicted or suggested as it take the new name",
    "merge": "its {n} approved samples and the pending ones predicted or suggested as it join {target}",
    "retire": "its {n} approved samples become rejected (kept, with the audit) and it can no longer be approved",
}


def labels_section() -> None:
    """Reviewers see the labels and the latest changes; admins get the controls."""
    token = state.token()
    st.subheader("Labels", anchor=False)
    if token is None:
        st.caption(":material/lock: An admin can log in to rename, merge or retire a label.")
        return
    try:
        overview = client.read_labels(token)
    except ApiError as err:
        ui.show_error(err)
        return
    labels = overview["labels"]
    if labels:
        st.dataframe([{"label": row["label"], "approved": row["approved"], "pending": row["pending"]}
                      for row in labels], hide_index=True, width=520)
    else:
        st.caption("No approved samples yet.")
    if overview["changes"]:
        with st.expander(f"Label changes ({len(overview['changes'])})"):
            st.dataframe([change_row(c) for c in overview["changes"]], hide_index=True, width="stretch")
    if not state.is_admin():
        st.caption(":material/lock: An admin can rename, merge or retire a label.")
        return
    if labels:
        change_control(token, {row["label"]: row["approved"] for row in labels})


def change_row(change: dict[str, Any]) -> dict[str, Any]:
    return {"#": change["id"], "change": describe(change), "by": change["changed_by"],
            "approved": change["approved"], "pending": change["pending"], "when": ui.when(change["created_at"])}


def describe(change: dict[str, Any]) -> str:
    """``rename sea → ocean``, ``merge glacier into mountain``, ``retire street``."""
    if change["kind"] == "retire":
        return f"retire {change['label']}"
    return f"{change['kind']} {change['label']} {'into' if change['kind'] == 'merge' else '→'} {change['into']}"


def change_control(token: str, counts: dict[str, int]) -> None:
    """Choose a label and what to do with it, confirm, send."""
    done = st.session_state.setdefault(DONE, 0)  # changes made in this session: a new one starts with fresh inputs
    names = sorted(counts)
    cols = st.columns(2, width=720)
    label = cols[0].selectbox("Label", names, key="taxonomy-label")
    kind = cols[1].radio("Change", list(OPERATIONS), format_func=OPERATIONS.__getitem__, key="taxonomy-kind",
                         horizontal=True)
    target: str | None = None
    if kind == "rename":
        target = st.text_input("New name", key=f"taxonomy-to-{done}", max_chars=64, width=360).strip() or None
    elif kind == "merge":
        others = [name for name in names if name != label]
        if not others:
            st.caption("There is no other label to merge into.")
            return
        target = st.selectbox("Merge into", others, key="taxonomy-into", width=360)
    what = CONSEQUENCES[kind].format(n=counts[label], target=target)
    # The confirmation belongs to this exact change: choosing another label or target asks again.
    confirmed = st.checkbox(f"Yes, {kind} {label!r}{f' → {target!r}' if kind == 'rename' and target else ''}: "
                            f"{what}. A retrain follows.", key=f"taxonomy-confirm-{done}-{kind}-{label}-{target}")
    ready = confirmed and (kind == "retire" or target is not None)
    if not st.button(f"{OPERATIONS[kind].split()[0]} {label}", type="primary", disabled=not ready,
                     icon=":material/label:", key="taxonomy-apply"):
        return
    try:
        change = client.change_label(token, label, kind=kind, target=target)
    except ApiError as err:
        ui.show_error(err)
        return
    retrain = change.get("retrain") or {}
    state.flash(f"Label change #{change['id']}: {describe(change)} ({change['approved']} approved and "
                f"{change['pending']} pending samples changed). Retrain: {retrain.get('detail', 'not asked for')}.")
    st.session_state[DONE] = done + 1
    st.rerun()
