"""A section of the Models page (no page of its own): an admin chooses a version and makes it the champion — a
rollback when it is older than the champion — after confirming in a dialog that says what changes: the test
metrics, each label's recall, and that the API serves it from now on, recorded under the admin's name."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError
from streamlit_app.version_compare import metric_difference, pairing_note, recall_changes, version_key

PENDING = "champion-change-pending"  # the version whose confirmation dialog is open


def _open(version: str) -> None:
    st.session_state[PENDING] = version


def _close() -> None:
    st.session_state.pop(PENDING, None)


def is_rollback(version: str, champion: str | None) -> bool:
    """Whether making ``version`` the champion is a rollback (it is older than the champion)."""
    return champion is not None and version_key(version) < version_key(champion)


def what_happens(version: str, champion: str | None, username: str) -> str:
    """The consequence of confirming, in one sentence."""
    kind = "rollback" if is_rollback(version, champion) else "promotion"
    return (f"The API serves v{version} for every prediction from now on (within seconds); this is recorded as your "
            f"{kind} ({username}, now) and the page says so under the champion.")


def promote_control(models: dict[str, Any]) -> None:
    """Choose a version and make it the champion after confirming in a dialog (admins only)."""
    st.subheader("Change the champion", anchor=False)
    token = state.token()
    if token is None or not state.is_admin():
        st.caption(":material/lock: An admin can log in to roll back to an earlier version or promote another.")
        return
    champion = models.get("champion")
    by_version = {v["version"]: v for v in models["versions"]}
    choices = sorted((v for v in by_version if v != champion), key=version_key, reverse=True)
    if not choices:
        st.caption("There is no other version to promote.")
        return
    older = [v for v in choices if is_rollback(v, champion)]
    with st.container(border=True, width=560):
        version = st.selectbox("Version", choices, index=choices.index(older[0]) if older else 0,
                               key="champion-choice",
                               format_func=lambda v: f"v{v}" + (" (the one before the champion)"
                                                                if older and v == older[0] else ""))
        label = f"Roll back to v{version}…" if is_rollback(version, champion) else "Make it the champion…"
        st.button(label, type="primary", icon=":material/swap_vert:", key="champion-open", on_click=_open,
                  args=(version,))
        st.caption("You confirm in the next step, which shows what changes.")
    pending = st.session_state.get(PENDING)
    if isinstance(pending, str) and pending in by_version and pending != champion:
        title = f"Roll back to v{pending}?" if is_rollback(pending, champion) else f"Make v{pending} the champion?"
        st.dialog(title, width="medium", on_dismiss=_close)(_confirm)(token, by_version[pending],
                                                                       by_version.get(champion))
    elif pending is not None:
        _close()  # the version is gone or already the champion


def _confirm(token: str, chosen: dict[str, Any], current: dict[str, Any] | None) -> None:
    """The dialog's body: the differences, the consequence, Confirm and Cancel."""
    version, champion = chosen["version"], current["version"] if current else None
    st.markdown(metric_difference(version, chosen.get("metrics"), champion, (current or {}).get("metrics")))
    if current is not None and (lines := recall_changes(current, chosen)):
        st.markdown(f"Each label's test recall, v{version} against v{champion}:")
        st.markdown("\n".join(f"- {line}" for line in lines))
    if current is not None:
        st.caption(pairing_note(current, chosen))
    st.info(what_happens(version, champion, st.session_state.get(state.USERNAME) or "you"), icon=":material/info:")
    confirm_col, cancel_col = st.columns(2)
    confirmed = confirm_col.button("Confirm", type="primary", key="champion-confirm", width="stretch")
    if cancel_col.button("Cancel", key="champion-cancel", width="stretch"):
        _close()
        st.rerun()
    if not confirmed:
        return
    try:
        result = client.promote(token, version)
    except ApiError as err:
        ui.show_error(err)
        return
    _close()
    previous = result.get("previous")
    state.flash(f"Version {result['champion']} is now the champion" + (f" (was version {previous})." if previous
                                                                       else "."))
    st.rerun()
