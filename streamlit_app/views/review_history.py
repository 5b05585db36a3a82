"""Recently reviewed: the reviewer's own latest decisions, each with Undo while its window lasts."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, ui
from streamlit_app.client import ApiError
from streamlit_app.views.review_card import undo

VERBS = {"approve": "Approved", "correct": "Corrected", "reject": "Rejected"}


def decision_words(review: dict[str, Any]) -> str:
    """'Approved #12 as cat' / 'Corrected #12 to cat (was dog)' / 'Rejected #12'."""
    action, sample_id, label = review.get("action"), review["sample_id"], review.get("new_label")
    if action == "reject":
        return f"Rejected **#{sample_id}**"
    if action == "correct":
        was = f" (was {review['old_label']})" if review.get("old_label") else ""
        return f"Corrected **#{sample_id}** to **{label}**{was}"
    return f"{VERBS.get(str(action), str(action).capitalize())} **#{sample_id}** as **{label}**"


def recently_reviewed(token: str, *, limit: int = 10) -> None:
    """A collapsed list of the reviewer's latest decisions, newest first; Undo on those still undoable."""
    try:
        recent = client.read_recent_reviews(token, limit=limit)
    except ApiError as err:
        ui.show_error(err)
        return
    reviews = recent.get("reviews") or []
    undoable = sum(1 for r in reviews if r.get("undoable"))
    title = f"Recently reviewed by you ({len(reviews)}{f', {undoable} undoable' if undoable else ''})"
    with st.expander(title, icon=":material/history:"):
        if not reviews:
            st.caption("Your decisions will be listed here.")
            return
        minutes = max(1, round(int(recent.get("undo_seconds") or 0) / 60))
        st.caption(f"Your own decisions can be undone for {minutes} minute{'s' if minutes != 1 else ''}, "
                   "as long as nobody changed the sample since." if recent.get("undo_seconds")
                   else "Undo is switched off on this installation.")
        for review in reviews:
            words, when, button = st.columns([5, 2, 1], vertical_alignment="center")
            words.markdown(decision_words(review))
            when.caption(ui.when(review.get("created_at")))
            if review.get("undoable") and button.button("Undo", key=f"recent-undo-{review['sample_id']}",
                                                        icon=":material/undo:", width="stretch"):
                undo(token, review["sample_id"])
