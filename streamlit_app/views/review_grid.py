"""The review queue as a compact grid: tick several cards, then approve them as predicted (A) or reject them (X)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, review_nav, state, ui
from streamlit_app.client import ApiError
from streamlit_app.views.review_card import conflict_note, near_duplicate_note

GRID_COLUMNS = 4


def decide_many(token: str, samples: list[dict[str, Any]], *, action: str) -> None:
    """Approve (each as predicted) or reject several samples; report how many succeeded and why others did not."""
    done, failed = 0, []
    for sample in samples:
        try:
            client.review_sample(token, sample["id"], action=action,
                                 label=sample.get("predicted_label") if action == "approve" else None)
            done += 1
        except ApiError as err:
            failed.append(f"#{sample['id']}: {err.detail}")
    client.clear_review_reads()
    for sample in samples:
        st.session_state.pop(f"pick-{sample['id']}", None)
    verb = "Approved" if action == "approve" else "Rejected"
    state.flash(f"{verb} {done} sample{'s' if done != 1 else ''}."
                + (f" Not decided: {'; '.join(failed)}" if failed else ""))
    st.rerun()


def sample_grid(token: str, samples: list[dict[str, Any]]) -> None:
    """A compact grid: tick several cards, then approve them as predicted or reject them together."""
    picked = [s for s in samples if st.session_state.get(f"pick-{s['id']}")]
    approvable = [s for s in picked if s.get("predicted_label")]
    with st.container(horizontal=True, vertical_alignment="center"):
        if st.button(f"Approve {len(approvable)} selected as predicted", key="grid-approve", type="primary",
                     icon=":material/done_all:", disabled=not approvable, shortcut=review_nav.APPROVE,
                     help="Each ticked sample gets its predicted label."):
            decide_many(token, approvable, action="approve")
        if st.button(f"Reject {len(picked)} selected", key="grid-reject", icon=":material/block:",
                     disabled=not picked, shortcut=review_nav.REJECT, help="Reject every ticked sample."):
            decide_many(token, picked, action="reject")
        st.caption("Tick the cards to decide together.")
    for start in range(0, len(samples), GRID_COLUMNS):
        for column, sample in zip(st.columns(GRID_COLUMNS), samples[start : start + GRID_COLUMNS], strict=False):
            with column, st.container(border=True, key=f"cell-{sample['id']}"):
                grid_cell(token, sample)


def grid_cell(token: str, sample: dict[str, Any]) -> None:
    try:
        st.image(client.read_sample_image(token, sample["id"]), width="stretch")
    except ApiError as err:
        st.caption(err.detail)
    st.checkbox(f"#{sample['id']} · {sample.get('predicted_label') or '—'} "
                f"{ui.percent(sample.get('confidence'))}", key=f"pick-{sample['id']}")
    if sample.get("predicted_by_version"):
        st.caption(f"by model v{sample['predicted_by_version']}")
    if sample.get("suggested_label") and sample["suggested_label"] != sample.get("predicted_label"):
        st.caption(f":material/lightbulb: suggested {sample['suggested_label']}")
    if conflict := sample.get("suggestion_conflict"):
        st.caption(f":material/warning: {conflict_note(sample.get('suggested_label'), conflict)}")
    for twin in sample.get("near_duplicates") or []:
        st.caption(f":material/content_copy: {near_duplicate_note(twin)}")
