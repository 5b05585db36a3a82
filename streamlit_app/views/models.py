"""Models: registered versions with their metrics, training runs with their gate decisions, the champion;
logged-in admins can promote any version (a rollback is a promotion of an older one)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from streamlit_app import charts, client, ui
from streamlit_app.client import ApiError
from streamlit_app.views import champion_change, compare_versions, model_quality, retrain, rollout, taxonomy
from streamlit_app.views.evidence_words import evidence_sentences


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _metric(metrics: dict[str, Any] | None, name: str) -> float | None:
    value = (metrics or {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def champion_summary(models: dict[str, Any]) -> None:
    champion = models.get("champion")
    if not champion:
        st.info("No model has been promoted yet: the first training run that passes the gate becomes the "
                "champion.", icon=":material/hourglass_empty:")
        return
    metrics = next((v.get("metrics") for v in models["versions"] if v["version"] == champion), None)
    cols = st.columns(5)
    cols[0].metric("Champion", f"v{champion}")
    cols[1].metric("Test accuracy", ui.percent(_metric(metrics, "accuracy")))
    cols[2].metric("Macro F1", ui.percent(_metric(metrics, "macro_f1")))
    log_loss = _metric(metrics, "log_loss")
    cols[3].metric("Log loss", "—" if log_loss is None else f"{log_loss:.3f}")
    n = _metric(metrics, "n")
    cols[4].metric("Test images", "—" if n is None else f"{n:.0f}")
    if (said := champion_origin(champion, models.get("changes") or [])) is not None:
        st.caption(said)
    serving = models.get("serving")
    if serving and serving != champion:
        st.caption(f"The API still serves version {serving}; it follows the champion within seconds.")


def champion_origin(champion: str, changes: list[dict[str, Any]]) -> str | None:
    """Who made the champion the champion, and when (None when no change was recorded: an older install)."""
    change = next((c for c in changes if c.get("version") == champion), None)
    if change is None:
        return None
    when, was = ui.when(change.get("created_at")), f" (was v{change['previous']})" if change.get("previous") else ""
    if change.get("kind") == "run":
        return f"Promoted by {change['changed_by']} on {when}{was}: its candidate passed the gate."
    if change.get("kind") == "rollback":
        return f"Rolled back to v{champion} by {change['changed_by']} on {when}{was}."
    if change.get("kind") == "rollout" and change.get("changed_by") == "rule":
        return f"Promoted by the rollout rule on {when}{was}: as good as the champion on live traffic (see Rollout)."
    if change.get("kind") == "rollout":
        return f"Promoted from its rollout by {change['changed_by']} on {when}{was}, overriding the rollout rule."
    return f"Made the champion by {change['changed_by']} on {when}{was}."


def latest_evidence(runs: list[dict[str, Any]], champion: str | None = None, challenger: str | None = None) -> None:
    """Why the model serving now was promoted (the run that registered the champion), and the newest run when it
    is another one: a later run refused or passed, or a later version that was rolled back."""
    finished = sorted((r for r in runs if r.get("evidence")), key=lambda r: r["id"], reverse=True)
    if not finished:
        return
    newest = finished[0]
    serving = next((r for r in finished if champion and r.get("registered_version") == champion), None)
    run = serving or newest
    if serving is not None:
        st.subheader(f"Why v{champion} serves: run {run['id']} promoted it", anchor=False)
    else:
        verdict = "promoted" if run.get("promoted") else "passed by the gate" if run.get("gate_passed") else "refused"
        st.subheader(f"Why run {run['id']} was {verdict}", anchor=False)
    if serving is not None and newest is not serving:
        st.caption(newer_run_words(newest, champion, challenger))
    for line in evidence_sentences(run["evidence"]):
        st.markdown(f"- {line}")
    candidates = run.get("candidates") or []
    if len(candidates) > 1:
        st.caption(f"Candidates tried (the lowest cross-validated log loss wins: {run.get('backbone')}):")
        st.dataframe(pd.DataFrame([{"backbone": c["backbone"], "CV accuracy": c.get("accuracy"),
                                    "CV log loss": c.get("log_loss")} for c in candidates]),
                     hide_index=True, column_config={"CV accuracy": st.column_config.NumberColumn(format="percent"),
                                                     "CV log loss": st.column_config.NumberColumn(format="%.3f")})


def newer_run_words(run: dict[str, Any], champion: str | None, challenger: str | None = None) -> str:
    """A run newer than the champion's, in one sentence: a version it registered that is the challenger now, one
    that no longer serves (rolled back), or the gate's decision on it."""
    version = run.get("registered_version")
    if version and version == challenger:
        return (f"Run {run['id']} registered v{version} later: it is the challenger now, tried on live traffic "
                "(Rollout).")
    if version and version != champion and not run.get("promoted") and run.get("gate_passed"):
        return (f"Run {run['id']} registered v{version} later as the challenger of a rollout (see Rollout); "
                f"v{champion} is the champion.")
    if version and version != champion:
        return (f"Run {run['id']} registered v{version} later; v{champion} is the champion again (a rollback or a "
                f"promotion by an admin).")
    verdict = "passed the gate" if run.get("gate_passed") else "was refused"
    return f"The newest run, {run['id']}, {verdict}: {run.get('gate_reason') or 'no reason recorded'}."


def accuracy_chart(versions: list[dict[str, Any]]) -> None:
    """Test and cross-validated accuracy per registered version."""
    rows = [{"version": f"v{v['version']}", "test accuracy": _metric(v.get("metrics"), "accuracy"),
             "cross-validated accuracy": _metric(v.get("evidence"), "cv_accuracy")}
            for v in sorted(versions, key=lambda v: _version_key(v["version"]))]
    if len(rows) < 2:
        return
    st.subheader("Accuracy per version", anchor=False)
    st.altair_chart(charts.accuracy_lines(rows), width="stretch")


def versions_table(versions: list[dict[str, Any]]) -> None:
    st.subheader("Versions", anchor=False)
    if not versions:
        st.caption("No registered versions yet.")
        return
    rows = [{
        "version": v["version"],
        "champion": bool(v.get("is_champion")),
        "registered": ui.when(v.get("created_at")),
        "backbone": v.get("backbone") or "—",
        "accuracy": _metric(v.get("metrics"), "accuracy"),
        "macro F1": _metric(v.get("metrics"), "macro_f1"),
        "log loss": _metric(v.get("metrics"), "log_loss"),
        "test images": _metric(v.get("metrics"), "n"),
        "run": v.get("run_id"),
    } for v in sorted(versions, key=lambda v: _version_key(v["version"]), reverse=True)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "champion": st.column_config.CheckboxColumn("champion", help="The version the API serves."),
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "macro F1": st.column_config.NumberColumn(format="percent"),
        "log loss": st.column_config.NumberColumn(format="%.3f"),
        "test images": st.column_config.NumberColumn(format="%d"),
        "run": st.column_config.NumberColumn(format="%d"),
    })


def runs_table(runs: list[dict[str, Any]]) -> None:
    st.subheader("Training runs", anchor=False)
    if not runs:
        st.caption("No training runs yet.")
        return
    gate = {True: "passed", False: "refused", None: "—"}
    rows = [{
        "run": r["id"],
        "status": r.get("status"),
        "gate": gate.get(r.get("gate_passed"), "—"),
        "version": r.get("registered_version") or "",
        "promoted": bool(r.get("promoted")),
        "accuracy": _metric(r.get("metrics"), "accuracy"),
        "macro F1": _metric(r.get("metrics"), "macro_f1"),
        "reason": r.get("gate_reason") or "",
        "backbone": r.get("backbone"),
        "started": ui.when(r.get("started_at")),
        "finished": ui.when(r.get("finished_at")),
    } for r in sorted(runs, key=lambda r: r["id"], reverse=True)]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "run": st.column_config.NumberColumn(format="%d"),
        "gate": st.column_config.TextColumn(help="The metric gate's decision on the candidate."),
        "reason": st.column_config.TextColumn(width="large", help="Why the gate passed or refused the candidate."),
        "accuracy": st.column_config.NumberColumn(format="percent"),
        "macro F1": st.column_config.NumberColumn(format="percent"),
    })


def models_page() -> None:
    ui.record_view("models")
    st.title("Models", anchor=False)
    try:
        models = client.read_models()
    except ApiError as err:
        ui.show_error(err)
        return
    champion_summary(models)
    rollout.rollout_section(models)
    latest_evidence(models.get("runs", []), models.get("champion"), models.get("challenger"))
    accuracy_chart(models.get("versions", []))
    model_quality.quality_section(models.get("versions", []), models.get("champion"))
    compare_versions.compare_section(models.get("versions", []), models.get("champion"))
    versions_table(models.get("versions", []))
    runs_table(models.get("runs", []))
    champion_change.promote_control(models)
    retrain.retrain_control()
    taxonomy.labels_section()


models_page()
