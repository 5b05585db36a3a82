"""The Models page says the gate's evidence in words: the trivial baseline and the champion's own run included."""

from __future__ import annotations

from streamlit_app.views.evidence_words import evidence_sentences


def test_the_baseline_and_the_champions_run_are_said_in_words() -> None:
    evidence = {"n_cv": 328, "cv_accuracy": 0.893, "cv_accuracy_ci": [0.855, 0.922], "n_test": 32,
                "test_accuracy": 0.938, "test_accuracy_ci": [0.8, 0.98], "champion_version": "2",
                "paired": {"both": 28, "candidate_only": 2, "champion_only": 1, "neither": 1}, "mcnemar_p": 0.5,
                "baseline": {"share": 0.171, "test_share": 0.2, "n_labels": 6},
                "champion_cv": {"accuracy": 0.9, "candidate_accuracy": 0.91, "n": 300, "p": 0.4}}
    words = " ".join(evidence_sentences(evidence))
    assert "Always answering the commonest of its 6 labels would score 17.1%" in words, words
    assert "On the 300 training images both runs cross-validated: 91.0% right out of fold now, 90.0% in champion " \
        "v2's run." in words
    older = {key: value for key, value in evidence.items() if key not in ("baseline", "champion_cv")}
    assert "trivial baseline" not in " ".join(evidence_sentences(older))  # runs recorded before say nothing of it
