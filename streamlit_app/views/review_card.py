"""One pending sample as a card: its image, prediction, notes and the decisions. The card in focus also takes the
keyboard (A approve, X reject, 1-9/0 a label); after a decision a notice takes the card's place, with Undo."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, review_nav, ui
from streamlit_app.client import ApiError

LAST = "review_last"  # {"id", "message", "position", "undone"}: the notice shown where the decided card was
FOCUS_ID, FOCUS_POSITION = "review_focus_id", "review_focus_position"


def decide(token: str, sample_id: int, *, action: str, label: str | None, done: str, position: int) -> None:
    """Send the decision; on success reload the queue with the notice in the card's place, else show the API's
    reason. The focus stays at the card's position: on the next card."""
    try:
        client.review_sample(token, sample_id, action=action, label=label)
    except ApiError as err:
        if err.status in (404, 409):  # decided by someone else meanwhile: the next run reloads the queue
            client.clear_review_reads()
        ui.show_error(err)
        return
    st.session_state[LAST] = {"id": sample_id, "message": done, "position": position, "undone": False}
    st.session_state[FOCUS_ID], st.session_state[FOCUS_POSITION] = None, position
    st.rerun()


def undo(token: str, sample_id: int) -> None:
    """Undo the reviewer's own last decision on the sample (the API checks the window and that nothing changed
    since); the sample waits in the queue again and takes the focus."""
    try:
        client.undo_review(token, sample_id)
    except ApiError as err:
        ui.show_error(err)
        return
    last = st.session_state.get(LAST) or {}
    st.session_state[LAST] = {"id": sample_id, "position": last.get("position", 0), "undone": True,
                              "message": f"Undone: sample #{sample_id} waits for review again."}
    st.session_state[FOCUS_ID] = sample_id
    st.rerun()


def decided_notice(token: str, last: dict[str, Any], *, undo_key: str | None) -> None:
    """The confirmation where the decided card was, with Undo (shortcut U) while it is the last decision."""
    with st.container(border=True, key=f"decided-{last['id']}", horizontal=True, vertical_alignment="center"):
        if last.get("undone"):
            st.info(last["message"], icon=":material/undo:")
            return
        st.success(last["message"], icon=":material/check_circle:")
        if st.button("Undo", key=f"undo-{last['id']}", icon=":material/undo:", shortcut=undo_key,
                     help="Put the sample back in the queue (your own decision, for a few minutes)."):
            undo(token, last["id"])


def sample_card(token: str, sample: dict[str, Any], labels: list[str], *, position: int, focused: bool) -> None:
    sample_id, predicted = sample["id"], sample.get("predicted_label")
    with st.container(border=True, key=f"sample-{sample_id}"):
        picture, details = st.columns([2, 3], gap="large")
        with picture:
            try:
                st.image(client.read_sample_image(token, sample_id), width="stretch")
            except ApiError as err:
                ui.show_error(err)
        with details:
            submitted = ui.when(sample.get("created_at"))
            focus = " · :primary-badge[:material/keyboard: in focus]" if focused else ""
            st.markdown(f"**Sample #{sample_id}** · {sample.get('source', 'upload')} · {submitted}{focus}")
            label_col, confidence_col = st.columns(2)
            version = sample.get("predicted_by_version")
            label_col.metric("Predicted", predicted or "—", help=f"by model v{version}" if version else None)
            confidence_col.metric("Confidence", ui.percent(sample.get("confidence")))
            if version:
                label_col.caption(f"by model v{version}")
            sample_notes(sample)
            decision_buttons(token, sample, position=position, focused=focused)
            if focused:
                label_buttons(token, sample, labels, position=position)
            correction(token, sample, labels, position=position)


def sample_notes(sample: dict[str, Any]) -> None:
    """What the reviewer should know: unfamiliar, the submitter's suggestion, a contradiction, near-duplicates."""
    suggested = sample.get("suggested_label")
    if sample.get("predicted_unfamiliar"):
        st.markdown(":material/help: Unfamiliar: this looks like nothing the model was trained on (a new "
                    "label, or something that does not belong).")
    if suggested:
        st.markdown(f":material/lightbulb: The submitter suggests **{suggested}**.")
    if conflict := sample.get("suggestion_conflict"):
        st.warning(conflict_note(suggested, conflict), icon=":material/warning:")
    for twin in sample.get("near_duplicates") or []:
        st.markdown(f":material/content_copy: {near_duplicate_note(twin)}")


def decision_buttons(token: str, sample: dict[str, Any], *, position: int, focused: bool) -> None:
    sample_id, predicted, suggested = sample["id"], sample.get("predicted_label"), sample.get("suggested_label")
    twins = sample.get("near_duplicates") or []
    twin = twins[0] if twins else None
    with st.container(horizontal=True):
        if twin and twin.get("label") and twin.get("status") == "approved" and st.button(
                f"Approve as {twin['label']}, like #{twin['id']}", key=f"twin-{sample_id}",
                icon=":material/content_copy:", help="The same label as the image it nearly duplicates."):
            decide(token, sample_id, action="approve", label=twin["label"], position=position,
                   done=f"Approved sample #{sample_id} as {twin['label']}, like #{twin['id']}.")
        if twin and st.button("Reject as duplicate", key=f"dup-{sample_id}", icon=":material/delete:"):
            decide(token, sample_id, action="reject", label=None, position=position,
                   done=f"Rejected sample #{sample_id} as a duplicate of #{twin['id']}.")
        if st.button(f"Approve as {predicted}" if predicted else "Approve", key=f"approve-{sample_id}",
                     type="primary", icon=":material/check:", disabled=not predicted,
                     shortcut=review_nav.APPROVE if focused and predicted else None,
                     help=None if predicted else "No prediction: correct it with a label instead."):
            decide(token, sample_id, action="approve", label=predicted, position=position,
                   done=f"Approved sample #{sample_id} as {predicted}.")
        if suggested and suggested != predicted and st.button(
                f"Approve as {suggested}", key=f"suggested-{sample_id}", icon=":material/check:"):
            decide(token, sample_id, action="approve", label=suggested, position=position,
                   done=f"Approved sample #{sample_id} as {suggested}.")
        if st.button("Reject", key=f"reject-{sample_id}", icon=":material/block:",
                     shortcut=review_nav.REJECT if focused else None,
                     help="Not usable for training (wrong subject, unreadable, duplicate...)."):
            decide(token, sample_id, action="reject", label=None, done=f"Rejected sample #{sample_id}.",
                   position=position)


def label_buttons(token: str, sample: dict[str, Any], labels: list[str], *, position: int) -> None:
    """The card in focus: one button per label (keys 1-9, 0), approving the sample as that label."""
    sample_id, predicted = sample["id"], sample.get("predicted_label")
    keyed = review_nav.label_keys(labels)
    if not keyed:
        return
    with st.container(horizontal=True, key=f"labels-{sample_id}"):
        for key, label in keyed:
            if st.button(label, key=f"as-{sample_id}-{key}", shortcut=key,
                         help=f"Approve #{sample_id} as {label} (key {key})."):
                corrected = "" if label == predicted else " (corrected)"
                decide(token, sample_id, action="approve", label=label, position=position,
                       done=f"Approved sample #{sample_id} as {label}{corrected}.")
    if len(labels) > len(keyed):
        st.caption(f"Keys 1–0 pick the first {len(keyed)} labels; choose the others below.")


def correction(token: str, sample: dict[str, Any], labels: list[str], *, position: int) -> None:
    sample_id, predicted = sample["id"], sample.get("predicted_label")
    choose, save = st.columns([3, 1], vertical_alignment="bottom")
    chosen = choose.selectbox("Correct the label", [label for label in labels if label != predicted],
                              index=None, accept_new_options=True, key=f"label-{sample_id}",
                              placeholder="Choose another label or type a new one")
    if save.button("Correct", key=f"correct-{sample_id}", icon=":material/edit:", width="stretch"):
        new_label = (chosen or "").strip()
        if not new_label:
            st.error("Choose or type the correct label first.")
        else:
            decide(token, sample_id, action="approve", label=new_label, position=position,
                   done=f"Approved sample #{sample_id} as {new_label} (corrected).")


def conflict_note(suggested: str | None, approved: str) -> str:
    """The card's warning: the submitter's suggestion contradicts the near-duplicate group's approved label."""
    return f"The suggestion **{suggested}** contradicts this image's near-duplicates, approved as **{approved}**."


def near_duplicate_note(twin: dict[str, Any]) -> str:
    """"near-duplicate of #N (label, status)" for a card."""
    what = ", ".join(part for part in (twin.get("label"), twin.get("status")) if part)
    return (f"Near-duplicate of **#{twin['id']}**{f' ({what})' if what else ''}, "
            f"similarity {ui.percent(twin.get('similarity'))}")


def highlight(sample_id: int, *, scroll: bool, nonce: int) -> None:
    """Outline the card in focus; after a key moved the focus, scroll it into view."""
    css = (f"<style>.st-key-sample-{sample_id} {{ box-shadow: 0 0 0 3px var(--primary-color, #ff4b4b); }}</style>")
    script = ("" if not scroll else
              f"<script>/* {nonce} */ setTimeout(() => document.querySelector('.st-key-sample-{sample_id}')"
              f"?.scrollIntoView({{block: 'center', behavior: 'smooth'}}), 50);</script>")
    st.html(css + script, unsafe_allow_javascript=bool(script))
