"""The gate's evidence in plain words, for the Models page (a module of its own: importing the page runs it)."""

from __future__ import annotations

from typing import Any

from streamlit_app import ui


def _ci(interval: list[float] | None) -> str:
    return f" (95% interval {interval[0]:.1%}–{interval[1]:.1%})" if interval else ""


def evidence_sentences(evidence: dict[str, Any]) -> list[str]:
    """The gate's evidence in plain words: cross-validation, the test split, the paired comparison, calibration."""
    lines = [f"Cross-validated accuracy {ui.percent(evidence.get('cv_accuracy'))}{_ci(evidence.get('cv_accuracy_ci'))}"
             f" over {evidence.get('n_cv', 0)} training images."]
    baseline = evidence.get("baseline")
    if baseline:
        lines.append(f"Always answering the commonest of its {baseline['n_labels']} labels would score "
                     f"{ui.percent(baseline['share'])}: the trivial baseline a model must clearly beat.")
    prior = evidence.get("champion_cv")
    if prior and evidence.get("champion_version"):
        lines.append(f"On the {prior['n']} training images both runs cross-validated: "
                     f"{ui.percent(prior.get('candidate_accuracy'))} right out of fold now, "
                     f"{ui.percent(prior['accuracy'])} in champion v{evidence['champion_version']}'s run.")
    if evidence.get("n_test"):
        lines.append(f"On {evidence['n_test']} held-out test images: {ui.percent(evidence.get('test_accuracy'))}"
                     f"{_ci(evidence.get('test_accuracy_ci'))}.")
    paired, champion = evidence.get("paired"), evidence.get("champion_version")
    if paired and champion:
        p = evidence.get("mcnemar_p")
        alpha = (evidence.get("rule") or {}).get("alpha", 0.05)
        verdict = ("significantly worse than the champion" if p is not None and p < alpha
                   else "no significant difference")
        lines.append(f"Against champion v{champion} on the same images: both right on {paired['both']}, only the "
                     f"new model on {paired['candidate_only']}, only the champion on {paired['champion_only']}, "
                     f"neither on {paired['neither']} (McNemar p = {p:.2f}: {verdict}).")
    elif evidence.get("n_test"):
        lines.append("There was no champion to compare with.")
    if evidence.get("ece_before") is not None:
        lines.append(f"Calibration error {ui.percent(evidence['ece_before'])} before temperature scaling, "
                     f"{ui.percent(evidence.get('ece_after'))} after (out-of-fold predictions).")
    return lines
