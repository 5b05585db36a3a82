"""A section of the Models page (no page of its own): start the retrain DAG and follow its latest runs, each said
as what it did (skipped and why, promoted, refused, failed where), linked to Airflow and MLflow; the table
refreshes itself while a run is queued or running."""

from __future__ import annotations

from typing import Any

import streamlit as st

from streamlit_app import client, state, ui
from streamlit_app.client import ApiError

REFRESH_SECONDS = 5
ACTIVE = ("queued", "running")


def retrain_trigger_words(min_new: int | None) -> str:
    """How a retrain starts, in the words of the Retrain box."""
    threshold = f"{min_new} newly approved samples" if min_new else "enough newly approved samples"
    return (f"A retrain starts by itself once {threshold} exist (the API announces each approval to Airflow; the "
            "retrain DAG runs on that event) and weekly as a fallback; start one now here. A candidate is promoted "
            "only if it clears the gate.")


def outcome_words(run: dict[str, Any]) -> str:
    """What a retrain run did, in a few words: "Skipped: only 3 new approved samples, 10 needed", "Promoted v4",
    "Refused: <the gate's reason>", "Failed in train_candidate", "Running: assess_candidate", "Queued"."""
    outcome, reason, task = run.get("outcome"), run.get("reason"), run.get("task")
    if outcome == "skipped":
        return f"Skipped: {reason}" if reason else "Skipped"
    if outcome == "promoted":
        return f"Promoted v{run['version']}" if run.get("version") else "Promoted"
    if outcome == "refused":
        return f"Refused: {reason}" if reason else "Refused by the gate"
    if outcome == "failed":
        return f"Failed in {task}" if task else "Failed"
    if outcome == "running":
        return f"Running: {task}" if task else "Running"
    if outcome == "queued":
        return "Queued"
    return str(run.get("state") or "—")  # an API that does not say


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
    runs = _read_runs(token)
    if runs is None:
        return
    if any(r.get("outcome") in ACTIVE for r in runs):
        _live_runs(token)
    else:
        runs_table(runs)


def _read_runs(token: str) -> list[dict[str, Any]] | None:
    try:
        return list(client.read_retrain_runs(token)["runs"])
    except ApiError as err:
        ui.show_error(err)
        return None


@st.fragment(run_every=REFRESH_SECONDS)
def _live_runs(token: str) -> None:
    """The runs table, read again every few seconds while a run is queued or running; once none is, the whole
    page runs again (a promotion changes the versions above) and stops refreshing."""
    runs = _read_runs(token)
    if runs is None:
        return
    if not any(r.get("outcome") in ACTIVE for r in runs):
        st.rerun(scope="app")
    runs_table(runs)
    st.caption(f":material/autorenew: Refreshing every {REFRESH_SECONDS} s while a run is queued or running.")


def runs_table(runs: list[dict[str, Any]]) -> None:
    """The retrain DAG's latest runs: what each did, when, and links to Airflow and MLflow."""
    if not runs:
        st.caption("No retrain runs yet.")
        return
    # what a person reads first — the outcome and its links — comes first; the long run id last
    rows = [{"outcome": outcome_words(r), "Airflow": r.get("airflow_url"), "MLflow": r.get("mlflow_url"),
             "started": ui.when(r.get("start_date")), "ended": ui.when(r.get("end_date")),
             "type": r.get("run_type"), "training run": r.get("training_run_id"), "run": r["dag_run_id"]}
            for r in runs]
    st.dataframe(rows, hide_index=True, width="stretch", key="retrain-runs", column_config={
        "outcome": st.column_config.TextColumn(width="large", help="What the run did: skipped (why), promoted, "
                                                                   "refused by the gate (why), failed (where)."),
        "training run": st.column_config.NumberColumn(format="%d", help="The Sprout training run it trained."),
        "Airflow": st.column_config.LinkColumn(display_text="Open in Airflow", help="The run in Airflow's UI."),
        "MLflow": st.column_config.LinkColumn(display_text="Open in MLflow", help="Its training run in MLflow."),
    })
