"""A section of the Models page (no page of its own): start the retrain DAG and follow its latest runs."""

from __future__ import annotations

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError


def retrain_trigger_words(min_new: int | None) -> str:
    """How a retrain starts, in the words of the Retrain box."""
    threshold = f"{min_new} newly approved samples" if min_new else "enough newly approved samples"
    return (f"A retrain starts by itself once {threshold} exist (the API announces each approval to Airflow; the "
            "retrain DAG runs on that event) and weekly as a fallback; start one now here. A candidate is promoted "
            "only if it clears the gate.")


def _min_new_samples(token: str) -> int | None:
    try:
        return int(client.read_stats(token)["min_new_samples"])
    except (ApiError, KeyError, TypeError, ValueError):
        return None


def retrain_control() -> None:
    """Start the retrain DAG now and show its latest runs (reviewers; forcing a retrain: admins only)."""
    token = state.token()
    if token is None:
        return
    st.subheader("Retrain", anchor=False)
    st.caption(retrain_trigger_words(_min_new_samples(token)))
    with st.form("retrain", width=520):
        force = state.is_admin() and st.checkbox("Train even with fewer new samples than the threshold (admin)")
        submitted = st.form_submit_button("Start retraining", icon=":material/model_training:")
    if submitted:
        try:
            run = client.trigger_retrain(token, force=force)
        except ApiError as err:
            ui.show_error(err)
        else:
            st.success(f"Started DAG run {run['dag_run_id']} ({run['state']}).", icon=":material/check_circle:")
    try:
        runs = client.read_retrain_runs(token)["runs"]
    except ApiError as err:
        ui.show_error(err)
        return
    if runs:
        st.dataframe([{"run": r["dag_run_id"], "state": r["state"], "type": r["run_type"],
                       "started": ui.when(r["start_date"]), "ended": ui.when(r["end_date"])} for r in runs],
                     hide_index=True, width="stretch")
    else:
        st.caption("No retrain runs yet.")
