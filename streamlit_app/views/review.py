"""Review: the pending queue (least confident, novel, diverse, suspect or oldest first) as cards or a grid;
approve, correct or reject each sample, or several at once; near-duplicates are named on their card, and a
suggestion that contradicts their approved label is flagged."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError
from streamlit_app.views.class_balance import class_balance_section

PAGE_SIZE = 10
GRID_SIZE = 24
GRID_COLUMNS = 4
ORDERS = {"uncertainty": "Least confident", "novelty": "Novel", "diverse": "Diverse", "suspect": "Contradicted",
          "oldest": "Oldest"}  # "suspect" orders pending samples; the "Suspect labels" lane lists approved ones
ORDER_CAPTIONS = {"uncertainty": "those the model found unfamiliar first, then the least confident",
                  "novelty": "farthest from the training set first",
                  "diverse": "uncertain and unlike each other first", "suspect": "contradicted suggestions first",
                  "oldest": "oldest first"}


def training_progress(token: str) -> dict[str, Any] | None:
    """Approvals since the last training run against the retrain threshold, and the queue's totals."""
    try:
        stats = client.read_stats(token)
    except ApiError as err:
        ui.show_error(err)
        return None
    done, needed = stats["approved_since_last_run"], max(1, stats["min_new_samples"])
    st.progress(min(done / needed, 1.0),
                text=f"**{done} of {needed}** new samples approved since the last training")
    if done >= needed:
        st.caption(":material/model_training: Enough new samples: the next training run will train a candidate.")
    pending, approved, rejected, champion = st.columns(4)
    pending.metric("Pending", stats["pending"])
    approved.metric("Approved", stats["approved"])
    rejected.metric("Rejected", stats["rejected"])
    champion.metric("Champion", stats.get("champion_version") or "—")
    for warning in stats.get("warnings") or []:
        st.warning(f"{warning} Approve training images with that label, or ask an admin to relabel it.",
                   icon=":material/warning:")
    class_balance_section(stats.get("class_balance"))
    return stats


def decide(token: str, sample_id: int, *, action: str, label: str | None, done: str) -> None:
    """Send the decision; on success reload the queue with a confirmation, else show the API's reason."""
    try:
        client.review_sample(token, sample_id, action=action, label=label)
    except ApiError as err:
        if err.status in (404, 409):  # decided by someone else meanwhile: the next run reloads the queue
            client.clear_review_reads()
        ui.show_error(err)
        return
    state.flash(done)
    st.rerun()


def sample_card(token: str, sample: dict[str, Any], labels: list[str]) -> None:
    sample_id, predicted, suggested = sample["id"], sample.get("predicted_label"), sample.get("suggested_label")
    with st.container(border=True, key=f"sample-{sample_id}"):
        picture, details = st.columns([2, 3], gap="large")
        with picture:
            try:
                st.image(client.read_sample_image(token, sample_id), width="stretch")
            except ApiError as err:
                ui.show_error(err)
        with details:
            submitted = ui.when(sample.get("created_at"))
            st.markdown(f"**Sample #{sample_id}** · {sample.get('source', 'upload')} · {submitted}")
            label_col, confidence_col = st.columns(2)
            version = sample.get("predicted_by_version")
            label_col.metric("Predicted", predicted or "—", help=f"by model v{version}" if version else None)
            confidence_col.metric("Confidence", ui.percent(sample.get("confidence")))
            if version:
                label_col.caption(f"by model v{version}")
            if sample.get("predicted_unfamiliar"):
                st.markdown(":material/help: Unfamiliar: this looks like nothing the model was trained on (a new "
                            "label, or something that does not belong).")
            if suggested:
                st.markdown(f":material/lightbulb: The submitter suggests **{suggested}**.")
            if conflict := sample.get("suggestion_conflict"):
                st.warning(conflict_note(suggested, conflict), icon=":material/warning:")
            twins = sample.get("near_duplicates") or []
            for twin in twins:
                st.markdown(f":material/content_copy: {near_duplicate_note(twin)}")
            twin = twins[0] if twins else None
            with st.container(horizontal=True):
                if twin and twin.get("label") and twin.get("status") == "approved" and st.button(
                        f"Approve as {twin['label']}, like #{twin['id']}", key=f"twin-{sample_id}",
                        icon=":material/content_copy:", help="The same label as the image it nearly duplicates."):
                    decide(token, sample_id, action="approve", label=twin["label"],
                           done=f"Approved sample #{sample_id} as {twin['label']}, like #{twin['id']}.")
                if twin and st.button("Reject as duplicate", key=f"dup-{sample_id}", icon=":material/delete:"):
                    decide(token, sample_id, action="reject", label=None,
                           done=f"Rejected sample #{sample_id} as a duplicate of #{twin['id']}.")
                if st.button(f"Approve as {predicted}" if predicted else "Approve", key=f"approve-{sample_id}",
                             type="primary", icon=":material/check:", disabled=not predicted,
                             help=None if predicted else "No prediction: correct it with a label instead."):
                    decide(token, sample_id, action="approve", label=predicted,
                           done=f"Approved sample #{sample_id} as {predicted}.")
                if suggested and suggested != predicted and st.button(
                        f"Approve as {suggested}", key=f"suggested-{sample_id}", icon=":material/check:"):
                    decide(token, sample_id, action="approve", label=suggested,
                           done=f"Approved sample #{sample_id} as {suggested}.")
                if st.button("Reject", key=f"reject-{sample_id}", icon=":material/block:",
                             help="Not usable for training (wrong subject, unreadable, duplicate...)."):
                    decide(token, sample_id, action="reject", label=None, done=f"Rejected sample #{sample_id}.")
            choose, save = st.columns([3, 1], vertical_alignment="bottom")
            correction = choose.selectbox("Correct the label", [label for label in labels if label != predicted],
                                          index=None, accept_new_options=True, key=f"label-{sample_id}",
                                          placeholder="Choose another label or type a new one")
            if save.button("Correct", key=f"correct-{sample_id}", icon=":material/edit:", width="stretch"):
                new_label = (correction or "").strip()
                if not new_label:
                    st.error("Choose or type the correct label first.")
                else:
                    decide(token, sample_id, action="approve", label=new_label,
                           done=f"Approved sample #{sample_id} as {new_label} (corrected).")


def conflict_note(suggested: str | None, approved: str) -> str:
    """The card's warning: the submitter's suggestion contradicts the near-duplicate group's approved label."""
    return f"The suggestion **{suggested}** contradicts this image's near-duplicates, approved as **{approved}**."


def near_duplicate_note(twin: dict[str, Any]) -> str:
    """"near-duplicate of #N (label, status)" for a card."""
    what = ", ".join(part for part in (twin.get("label"), twin.get("status")) if part)
    return (f"Near-duplicate of **#{twin['id']}**{f' ({what})' if what else ''}, "
            f"similarity {ui.percent(twin.get('similarity'))}")


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
                     icon=":material/done_all:", disabled=not approvable, shortcut="A",
                     help="Each ticked sample gets its predicted label (shortcut: A)."):
            decide_many(token, approvable, action="approve")
        if st.button(f"Reject {len(picked)} selected", key="grid-reject", icon=":material/block:",
                     disabled=not picked, shortcut="X", help="Reject every ticked sample (shortcut: X)."):
            decide_many(token, picked, action="reject")
        st.caption("Tick the cards to decide together.")
    for start in range(0, len(samples), GRID_COLUMNS):
        for column, sample in zip(st.columns(GRID_COLUMNS), samples[start : start + GRID_COLUMNS], strict=False):
            with column, st.container(border=True, key=f"cell-{sample['id']}"):
                try:
                    st.image(client.read_sample_image(token, sample["id"]), width="stretch")
                except ApiError as err:
                    st.caption(err.detail)
                st.checkbox(f"#{sample['id']} · {sample.get('predicted_label') or '—'} "
                            f"{ui.percent(sample.get('confidence'))}", key=f"pick-{sample['id']}")
                if sample.get("suggested_label") and sample["suggested_label"] != sample.get("predicted_label"):
                    st.caption(f":material/lightbulb: suggested {sample['suggested_label']}")
                if conflict := sample.get("suggestion_conflict"):
                    st.caption(f":material/warning: {conflict_note(sample.get('suggested_label'), conflict)}")
                for twin in sample.get("near_duplicates") or []:
                    st.caption(f":material/content_copy: {near_duplicate_note(twin)}")


def suspect_labels(token: str) -> None:
    """Approved samples whose label the last run's models doubt most (Cleanlab: out-of-fold for train/val,
    out-of-sample for test); admins fix them."""
    try:
        issues = client.read_label_issues(token, limit=10)
    except ApiError as err:
        ui.show_error(err)
        return
    if not issues:
        st.success("No suspect labels in the last training run.", icon=":material/verified:")
        return
    flagged = sum(1 for issue in issues if issue.get("flagged"))
    st.caption(f"{len(issues)} approved samples whose label the last run's model doubts most, most suspect first "
               f"(train, validation and test splits); Cleanlab counts {flagged} of them as label errors.")
    for issue in issues:
        with st.container(border=True):
            image, text = st.columns([1, 3])
            try:
                image.image(client.read_sample_image(token, issue["id"]), width="stretch")
            except ApiError as err:
                image.caption(err.detail)
            text.markdown(f"**#{issue['id']}** labelled **{issue['label']}**; likeliest other label "
                          f"**{issue['suggested_label']}** (suspect score {issue['score']:.2f}"
                          f"{', flagged' if issue.get('flagged') else ''}"
                          f"{', test split' if issue.get('evidence') == 'out_of_sample' else ''})")
            if not state.is_admin():
                text.caption(":material/lock: An admin can relabel it or send it back to the queue.")
                continue
            relabel, unapprove = text.columns(2)
            if relabel.button(f"Relabel as {issue['suggested_label']}", key=f"relabel-{issue['id']}",
                              icon=":material/edit:", width="stretch"):
                fix(token, issue["id"], issue["suggested_label"], f"Sample {issue['id']} is now "
                    f"{issue['suggested_label']}.")
            if unapprove.button("Back to the queue", key=f"unapprove-{issue['id']}", icon=":material/undo:",
                                width="stretch"):
                fix(token, issue["id"], None, f"Sample {issue['id']} waits for review again.")


def fix(token: str, sample_id: int, label: str | None, done: str) -> None:
    try:
        client.relabel_sample(token, sample_id, label=label)
    except ApiError as err:
        ui.show_error(err)
        return
    state.flash(done)
    st.rerun()


def review_page() -> None:
    st.title("Review", anchor=False)
    token = ui.require_login("review samples")
    ui.record_view("review")
    stats = training_progress(token)
    lane = st.segmented_control("Lane", ["Pending samples", "Suspect labels"], default="Pending samples",
                                label_visibility="collapsed", key="review_lane")
    if lane == "Suspect labels":
        suspect_labels(token)
    else:
        pending_queue(token, stats)


def remember_view(*, order: str, grid: bool) -> None:
    """Keep the queue's order and mode in the page's URL (``?order=novelty&mode=grid``): a reload, a bookmark or a
    shared link opens the queue as it was."""
    wanted = {"order": order, "mode": "grid" if grid else "cards"}
    if any(st.query_params.get(key) != value for key, value in wanted.items()):
        st.query_params.update(wanted)


def pending_queue(token: str, stats: dict[str, Any] | None) -> None:
    header, refresh = st.columns([4, 1], vertical_alignment="bottom")
    header.subheader("Pending samples", anchor=False)
    if refresh.button("Refresh", icon=":material/refresh:", width="stretch"):
        client.clear_review_reads()
        st.rerun()
    order_col, grid_col = st.columns([4, 1], vertical_alignment="center")
    remembered = st.query_params.get("order")
    order = order_col.segmented_control(
        "Order", list(ORDERS), format_func=ORDERS.__getitem__, key="review_order",
        default=remembered if remembered in ORDERS else "uncertainty") or "uncertainty"
    grid = grid_col.toggle("Grid", key="review_grid", value=st.query_params.get("mode") == "grid",
                           help="Several samples at a glance; decide them together.")
    remember_view(order=order, grid=grid)
    try:
        queue = client.read_samples(token, status="pending", order=order, limit=GRID_SIZE if grid else PAGE_SIZE)
    except ApiError as err:
        ui.show_error(err)
        return
    if not queue["data"]:
        st.success("The queue is empty: nothing waits for review.", icon=":material/done_all:")
        return
    st.caption(f"Showing {len(queue['data'])} of {queue['count']} pending samples, {ORDER_CAPTIONS[order]}.")
    if grid:
        sample_grid(token, queue["data"])
        return
    known = set((stats or {}).get("labels", {}))
    for sample in queue["data"]:
        known.update(label for label in (sample.get("predicted_label"), sample.get("suggested_label")) if label)
    for sample in queue["data"]:
        sample_card(token, sample, sorted(known))

review_page()
