"""Review: the pending queue (least confident, novel, diverse, contradicted or oldest first), page by page, as
cards or a grid; approve, correct or reject each sample, or several at once, by mouse or keyboard; undo one's own
recent decisions. The order, the mode and the page live in the URL (``?order=novelty&mode=cards&page=2``)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, review_nav, state, ui
from streamlit_app.client import ApiError
from streamlit_app.review_nav import Pager
from streamlit_app.views.class_balance import class_balance_section
from streamlit_app.views.review_card import FOCUS_ID, FOCUS_POSITION, LAST, decided_notice, highlight, sample_card
from streamlit_app.views.review_grid import sample_grid
from streamlit_app.views.review_history import recently_reviewed

PAGE, GRID, SCROLL = "review_page", "review_grid", "review_scroll"  # session keys (not widgets): survive reruns
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




def remember_view(*, order: str, grid: bool, page: int) -> None:
    """Keep the queue's order, mode and page in the page's URL (``?order=novelty&mode=grid&page=2``): a reload,
    a bookmark or a shared link opens the queue as it was."""
    wanted = {"order": order, "mode": "grid" if grid else "cards", "page": str(page)}
    if any(st.query_params.get(key) != value for key, value in wanted.items()):
        st.query_params.update(wanted)


def restore_view() -> None:
    """A new session (a reload) starts on the mode and page of its URL."""
    if PAGE not in st.session_state:
        st.session_state[PAGE] = review_nav.page_number(st.query_params.get("page"))
    if GRID not in st.session_state:
        st.session_state[GRID] = st.query_params.get("mode") == "grid"


def go_to_page(number: int, *, focus_position: int = 0) -> None:
    st.session_state[PAGE] = max(1, number)
    st.session_state[FOCUS_ID], st.session_state[FOCUS_POSITION] = None, focus_position
    st.session_state.pop(LAST, None)
    st.session_state[SCROLL] = True


def switch_mode() -> None:
    """Cards ⇄ grid, on the page that holds the same place in the queue."""
    grid = bool(st.session_state.get(GRID))
    old, new = ((review_nav.CELLS_PER_PAGE, review_nav.CARDS_PER_PAGE) if grid
                else (review_nav.CARDS_PER_PAGE, review_nav.CELLS_PER_PAGE))
    st.session_state[GRID] = not grid
    go_to_page((st.session_state.get(PAGE, 1) - 1) * old // new + 1)


def move_focus(ids: list[int], step: int, pager: Pager) -> None:
    """J / K: the next or previous card; past the page's last (first) card, the next (previous) page."""
    current = review_nav.focus_index(ids, wanted_id=st.session_state.get(FOCUS_ID),
                                     position=st.session_state.get(FOCUS_POSITION, 0))
    target = current + step
    if target >= len(ids) and pager.has_next:
        go_to_page(pager.number + 1)
    elif target < 0 and pager.has_previous:
        go_to_page(pager.number - 1, focus_position=pager.size - 1)
    else:
        target = min(max(0, target), len(ids) - 1)
        st.session_state[FOCUS_ID], st.session_state[FOCUS_POSITION] = ids[target], target
        st.session_state[SCROLL] = True


def navigation(pager: Pager, ids: list[int], *, grid: bool, shown: int) -> None:
    """Pages, focus and mode, each with its key; the keyboard legend under them."""
    with st.container(horizontal=True, vertical_alignment="center", key="review-nav"):
        st.button("Previous page", key="page-previous", icon=":material/chevron_left:",
                  disabled=not pager.has_previous, shortcut=review_nav.PREVIOUS_PAGE,
                  on_click=go_to_page, args=(pager.number - 1,))
        st.markdown(pager.words(shown))
        st.button("Next page", key="page-next", icon=":material/chevron_right:", disabled=not pager.has_next,
                  shortcut=review_nav.NEXT_PAGE, on_click=go_to_page, args=(pager.number + 1,))
        if not grid:
            st.button("Previous card", key="card-previous", icon=":material/keyboard_arrow_up:", disabled=not ids,
                      shortcut=review_nav.PREVIOUS_CARD, on_click=move_focus, args=(ids, -1, pager))
            st.button("Next card", key="card-next", icon=":material/keyboard_arrow_down:", disabled=not ids,
                      shortcut=review_nav.NEXT_CARD, on_click=move_focus, args=(ids, 1, pager))
        st.button("Cards" if grid else "Grid", key="review-mode", shortcut=review_nav.GRID, on_click=switch_mode,
                  icon=":material/view_agenda:" if grid else ":material/grid_view:",
                  help="Switch to one card per sample." if grid else "Several samples at a glance; decide them "
                                                                      "together.")
    st.caption(f":material/keyboard: {review_nav.legend_markdown()}")


def pending_queue(token: str, stats: dict[str, Any] | None) -> None:
    header, refresh = st.columns([4, 1], vertical_alignment="bottom")
    header.subheader("Pending samples", anchor=False)
    if refresh.button("Refresh", icon=":material/refresh:", width="stretch"):
        client.clear_review_reads()
        st.rerun()
    restore_view()
    remembered = st.query_params.get("order")
    order = st.segmented_control(
        "Order", list(ORDERS), format_func=ORDERS.__getitem__, key="review_order", on_change=go_to_page, args=(1,),
        default=remembered if remembered in ORDERS else "uncertainty") or "uncertainty"
    grid = bool(st.session_state[GRID])
    size = review_nav.CELLS_PER_PAGE if grid else review_nav.CARDS_PER_PAGE
    try:
        pager, queue = read_page(token, order=order, number=st.session_state[PAGE], size=size)
    except ApiError as err:
        ui.show_error(err)
        return
    st.session_state[PAGE] = pager.number
    remember_view(order=order, grid=grid, page=pager.number)
    samples = queue["data"]
    ids = [sample["id"] for sample in samples]
    navigation(pager, ids, grid=grid, shown=len(samples))
    recently_reviewed(token)
    last = st.session_state.get(LAST)
    if not samples:
        if last:
            decided_notice(token, last, undo_key=review_nav.UNDO)
        st.success("The queue is empty: nothing waits for review.", icon=":material/done_all:")
        return
    st.caption(f"{queue['count']} pending samples, {ORDER_CAPTIONS[order]}.")
    if grid:
        sample_grid(token, samples)
        return
    known = set((stats or {}).get("labels", {}))
    for sample in samples:
        known.update(label for label in (sample.get("predicted_label"), sample.get("suggested_label")) if label)
    focused = review_nav.focus_index(ids, wanted_id=st.session_state.get(FOCUS_ID),
                                     position=st.session_state.get(FOCUS_POSITION, 0))
    for position, sample in enumerate(samples):
        if last and position == min(last["position"], len(samples)):
            decided_notice(token, last, undo_key=review_nav.UNDO)
        sample_card(token, sample, sorted(known), position=position, focused=position == focused)
    if last and last["position"] >= len(samples):
        decided_notice(token, last, undo_key=review_nav.UNDO)
    highlight(ids[focused], scroll=bool(st.session_state.pop(SCROLL, False)), nonce=ids[focused])


def read_page(token: str, *, order: str, number: int, size: int) -> tuple[Pager, dict[str, Any]]:
    """The queue's page ``number``; a page past the end (the queue shrank) becomes the last page."""
    pager = Pager(number, size, 0)
    queue = client.read_samples(token, status="pending", order=order, limit=size, offset=pager.offset)
    pager = Pager(number, size, int(queue["count"]))
    if pager.clamped() != pager:
        pager = pager.clamped()
        queue = client.read_samples(token, status="pending", order=order, limit=size, offset=pager.offset)
    return pager, queue


review_page()
