"""A section of the Models page (no page of its own): the rollout — the challenger tried beside the champion on
live traffic (shadow or canary), its live comparison in plain words, what the rule decides and why, and the latest
ended rollouts. Admins promote or abort the open rollout (overriding the rule) or start one, each confirmed in a
dialog. The open rollout's part refreshes itself; any label set (the API's words and numbers name no label)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError
from streamlit_app.version_compare import version_key
from streamlit_app.views import champion_change

PENDING = "rollout-pending"  # the open dialog: {"action": "promote" | "abort", "rollout"} or {"action": "start",
# "version", "mode"}; it stays open until confirmed or cancelled, so a rollout decided meanwhile gets the API's answer
REFRESH_SECONDS = 10  # the API recomputes GET /rollouts at most every 10 s
MODES = ("shadow", "canary")
MODE_WORDS = {
    "shadow": "In shadow the champion answers every request and the challenger also scores a share of them, out of "
              "the clients' sight.",
    "canary": "In canary the challenger answers a share of the clients (each client always gets the same version) "
              "and the champion the rest.",
}
DOING = {"wait": "Waiting", "promote": "Promoting at the rule's next check",
         "abort": "Aborting at the rule's next check"}


def started_words(started_by: str | None) -> str:
    """``started_by`` as the API says it ("run 12", an admin's name, "command line") after "started"."""
    if not started_by:
        return "started"
    return "started from the command line" if started_by == "command line" else f"started by {started_by}"


def headline(rollout: dict[str, Any]) -> str:
    """"v3 is the challenger in shadow (started by run 12, 2026-12-07 13:20), against the champion v2."."""
    against = f", against the champion v{rollout['champion']}" if rollout.get("champion") else ""
    started = f"{started_words(rollout.get('started_by'))}, {ui.when(rollout.get('started_at'))}"
    return f"v{rollout['challenger']} is the challenger in {rollout['mode']} ({started}){against}."


def decision_words(decision: dict[str, Any] | None) -> str | None:
    """What the rule would do now and why: "Waiting: 12 of 30 reviewed live images; …" (None: no decision)."""
    if not decision:
        return None
    action, reason = str(decision.get("action")), str(decision.get("reason") or "")
    for prefix in ("Wait: ", "Promote: ", "Abort: "):  # the rule's own verb, replaced by what is happening
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
            break
    return f"{DOING.get(action, action.capitalize())}: {reason}" if reason else DOING.get(action, action)


def decided_by_words(decided_by: str | None) -> str:
    if decided_by == "rule":
        return "the rollout rule"
    return f"{decided_by} (an admin, overriding the rule)" if decided_by else "—"


def ended_rows(rollouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ended rollouts, newest first: outcome, by whom, why, when."""
    return [{"challenger": f"v{r['challenger']}", "outcome": r.get("outcome") or "—",
             "decided by": decided_by_words(r.get("decided_by")), "ended": ui.when(r.get("ended_at")),
             "reason": r.get("reason") or "", "mode": r.get("mode"), "started": ui.when(r.get("started_at"))}
            for r in rollouts if not r.get("open")]


def override_words(action: str, rollout: dict[str, Any], username: str) -> str:
    """What confirming an admin's decision does, in one sentence."""
    challenger, champion = f"v{rollout['challenger']}", f"v{rollout['champion']}" if rollout.get("champion") else None
    if action == "promote":
        effect = f"The API serves {challenger} for every prediction from now on (within seconds)"
    else:
        effect = f"{challenger} is discarded" + (f" and {champion} stays the champion" if champion else "")
    return (f"{effect}. This overrides the rollout rule and is recorded as your decision ({username}, now), with the "
            "reason below.")


def start_words(version: str, mode: str, champion: str | None, username: str) -> str:
    against = f" beside the champion v{champion}" if champion else ""
    return (f"v{version} becomes the challenger{against}. {MODE_WORDS.get(mode, '')} The rollout rule then promotes "
            f"or aborts it on the live evidence; recorded as started by you ({username}, now).")


def error_words(err: ApiError) -> str:
    """An API refusal (4xx) as the API's sentence; a 503 as the API being unavailable."""
    return f"The API is unavailable right now. {err.detail}" if err.status == 503 else err.detail


def _show(err: ApiError) -> None:
    if err.status == 503:
        st.error(error_words(err), icon=":material/cloud_off:")
    else:
        ui.show_error(err)


def rollout_section(models: dict[str, Any]) -> None:
    """The Rollout section: the open rollout (refreshing), the latest ended ones, and the admins' controls."""
    try:
        rollouts = list(client.read_rollouts()["rollouts"])
    except ApiError as err:
        st.subheader("Rollout", anchor=False)
        _show(err)
        return
    admin = state.token() is not None and state.is_admin()
    current = next((r for r in rollouts if r.get("open")), None)
    if not rollouts and not admin:
        return  # no rollout ever: nothing to say to a visitor
    st.subheader("Rollout", anchor=False)
    if current is not None:
        _live()
    else:
        st.caption("No rollout is open: the champion answers alone. A candidate that clears the gate is first tried "
                   "on live traffic as the challenger when the API's SPROUT_ROLLOUT is shadow or canary.")
    ended = ended_rows(rollouts)
    if ended:
        st.markdown("**Latest ended rollouts**")
        st.dataframe(ended, hide_index=True, width="stretch", key="rollouts-ended", column_config={
            "reason": st.column_config.TextColumn(width="large", help="The rule's sentence, or the admin's reason."),
        })
    if admin:
        _admin_controls(models, current)


def _open_rollout() -> dict[str, Any] | None:
    try:
        rollouts = client.read_rollouts()["rollouts"]
    except ApiError as err:
        _show(err)
        return None
    return next((r for r in rollouts if r.get("open")), None)


@st.fragment(run_every=REFRESH_SECONDS)
def _live() -> None:
    """The open rollout, read again every few seconds; once it has ended, the whole page runs again (a promotion
    changes the champion above) and stops refreshing."""
    current = _open_rollout()
    if current is None:
        st.rerun(scope="app")
        return
    open_rollout(current)
    st.caption(f":material/autorenew: Refreshing every {REFRESH_SECONDS} s while the rollout is open.")


def open_rollout(rollout: dict[str, Any]) -> None:
    """The open rollout: who and what, the comparison in the API's words, the rule's decision, a few numbers."""
    st.markdown(f"**{headline(rollout)}** {MODE_WORDS.get(rollout.get('mode') or '', '')}")
    st.markdown(rollout.get("summary") or "No live comparison yet.")
    if (said := decision_words(rollout.get("decision"))) is not None:
        icon = {"wait": ":material/hourglass_top:", "promote": ":material/trending_up:",
                "abort": ":material/block:"}.get(str((rollout.get("decision") or {}).get("action")))
        st.info(f"**The rule:** {said}", icon=icon)
    ev = rollout.get("evidence") or {}
    cols = st.columns(6)
    cols[0].metric("Compared requests", ev.get("shadowed", 0),
                   help=f"{ev.get('images', 0)} distinct images: the rule counts images, not requests.")
    cols[1].metric("Reviewed pairs", ev.get("reviewed", 0), help="Live images a reviewer labelled, scored by both.")
    cols[2].metric("Agreement", ui.percent(ev.get("agreement")))
    cols[3].metric("Challenger errors", ev.get("challenger_errors", 0))
    cols[4].metric("Champion p99", _ms(ev.get("champion_p99_ms")))
    cols[5].metric("Challenger p99", _ms(ev.get("challenger_p99_ms")))


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def _open_dialog(action: str, rollout: dict[str, Any] | None = None, version: str | None = None,
                 mode: str | None = None) -> None:
    st.session_state.pop(champion_change.PENDING, None)  # one dialog at a time
    st.session_state[PENDING] = {"action": action, "rollout": rollout, "version": version, "mode": mode}


def _close() -> None:
    st.session_state.pop(PENDING, None)


def _admin_controls(models: dict[str, Any], current: dict[str, Any] | None) -> None:
    token = state.token()
    assert token is not None
    champion = models.get("champion")
    if current is not None:
        promote_col, abort_col = st.columns(2, width=560)
        promote_col.button("Promote the challenger now…", key="rollout-promote", icon=":material/trending_up:",
                           on_click=_open_dialog, args=("promote", current), width="stretch")
        abort_col.button("Abort the rollout…", key="rollout-abort", icon=":material/block:",
                         on_click=_open_dialog, args=("abort", current), width="stretch")
    else:
        choices = sorted((v["version"] for v in models.get("versions") or [] if v["version"] != champion),
                         key=version_key, reverse=True)
        if choices:
            with st.container(border=True, width=560):
                version = st.selectbox("Version to try on live traffic", choices, key="rollout-version",
                                       format_func=lambda v: f"v{v}")
                mode = st.radio("Mode", MODES, key="rollout-mode", horizontal=True)
                st.button(f"Start a rollout of v{version}…", key="rollout-start", icon=":material/science:",
                          on_click=_open_dialog, args=("start", None, version, mode))
    pending = st.session_state.get(PENDING)
    if not isinstance(pending, dict):
        return
    action, chosen = pending.get("action"), pending.get("rollout")
    if action in ("promote", "abort") and isinstance(chosen, dict):
        title = f"Promote v{chosen['challenger']} now?" if action == "promote" else \
            f"Abort the rollout of v{chosen['challenger']}?"
        st.dialog(title, width="medium", on_dismiss=_close)(_confirm_decision)(token, str(action), chosen)
    elif action == "start" and pending.get("version"):
        st.dialog(f"Start a rollout of v{pending['version']}?", width="medium", on_dismiss=_close)(_confirm_start)(
            token, str(pending["version"]), str(pending.get("mode") or "shadow"), champion)
    else:
        _close()


def _buttons() -> tuple[bool, bool]:
    confirm_col, cancel_col = st.columns(2)
    confirmed = confirm_col.button("Confirm", type="primary", key="rollout-confirm", width="stretch")
    cancelled = cancel_col.button("Cancel", key="rollout-cancel", width="stretch")
    return confirmed, cancelled


def _confirm_decision(token: str, action: str, rollout: dict[str, Any]) -> None:
    """The promote / abort dialog: the evidence, what the rule says, the consequence, a reason, Confirm and Cancel."""
    st.markdown(rollout.get("summary") or "No live comparison yet.")
    if (said := decision_words(rollout.get("decision"))) is not None:
        st.markdown(f"**The rule now:** {said}")
    st.info(override_words(action, rollout, st.session_state.get(state.USERNAME) or "you"), icon=":material/info:")
    reason = st.text_input("Reason (recorded with the decision)", key="rollout-reason", max_chars=500)
    confirmed, cancelled = _buttons()
    if cancelled:
        _close()
        st.rerun()
    if not confirmed:
        return
    try:
        if (moved := _moved_on(rollout)) is not None:
            st.warning(moved, icon=":material/warning:")
            return
        ended = client.decide_rollout(token, action, rollout_id=int(rollout["id"]), reason=reason.strip() or None)
    except ApiError as err:
        _show(err)
        return
    _close()
    state.flash(f"v{ended['challenger']} was promoted: it is the champion now." if ended.get("outcome") == "promoted"
                else f"The rollout of v{ended['challenger']} was aborted: the champion stays.")
    st.rerun()


def _moved_on(rollout: dict[str, Any]) -> str | None:
    """Why deciding now would act on another rollout than the one shown (the API decides the open one), or None.
    None too when none is open any more: the API then says so itself."""
    now_open = next((r for r in client.read_rollouts(fresh=True)["rollouts"] if r.get("open")), None)
    if now_open is None or now_open["id"] == rollout["id"]:
        return None
    return (f"The rollout of v{rollout['challenger']} has ended meanwhile and v{now_open['challenger']} is the "
            "challenger now: nothing was done. Cancel and look again.")


def _confirm_start(token: str, version: str, mode: str, champion: str | None) -> None:
    """The start dialog: what happens, Confirm and Cancel."""
    st.info(start_words(version, mode, champion, st.session_state.get(state.USERNAME) or "you"),
            icon=":material/info:")
    confirmed, cancelled = _buttons()
    if cancelled:
        _close()
        st.rerun()
    if not confirmed:
        return
    try:
        started = client.start_rollout(token, version, mode=mode)
    except ApiError as err:
        _show(err)
        return
    _close()
    state.flash(f"v{started['challenger']} is the challenger in {started['mode']} now.")
    st.rerun()
