"""The Rollout section's words, from the API's answers: who started it, what the rule does now, who ended it and
what an admin's override or start does — no label named, so any label set reads alike."""

from __future__ import annotations

from typing import Any

from streamlit_app.client import ApiError
from streamlit_app.views.rollout import (
    decided_by_words,
    decision_words,
    ended_rows,
    error_words,
    headline,
    override_words,
    start_words,
)

OPEN: dict[str, Any] = {"id": 3, "challenger": "3", "champion": "2", "mode": "shadow", "started_by": "run 12",
        "started_at": "2026-12-07T13:20:05+00:00", "open": True, "outcome": None, "reason": None, "decided_by": None,
        "decision": {"action": "wait", "reason": "Wait: 12 of 30 reviewed live images; time-out in 6.9 days."}}


def test_the_headline_names_the_challenger_its_mode_who_started_it_and_when() -> None:
    assert headline(OPEN) == ("v3 is the challenger in shadow (started by run 12, 2026-12-07 13:20), against the "
                              "champion v2.")
    assert headline(OPEN | {"mode": "canary", "started_by": "command line", "champion": None}) == (
        "v3 is the challenger in canary (started from the command line, 2026-12-07 13:20).")


def test_the_rules_decision_says_what_is_happening_and_keeps_its_reason() -> None:
    assert decision_words(OPEN["decision"]) == "Waiting: 12 of 30 reviewed live images; time-out in 6.9 days."
    assert decision_words({"action": "abort", "reason": "Abort: the challenger failed on 3 of 40"}) == (
        "Aborting at the rule's next check: the challenger failed on 3 of 40")
    assert decision_words({"action": "promote", "reason": "Promote: enough"}) == (
        "Promoting at the rule's next check: enough")
    assert decision_words(None) is None


def test_ended_rollouts_say_the_outcome_by_whom_why_and_when_newest_first() -> None:
    rule = OPEN | {"open": False, "outcome": "promoted", "decided_by": "rule", "reason": "Promote: enough",
                   "ended_at": "2026-12-07T14:00:00+00:00"}
    admin = OPEN | {"id": 2, "challenger": "2", "open": False, "outcome": "aborted", "decided_by": "ada",
                    "reason": "slow", "ended_at": "2026-12-06T09:30:00+00:00"}
    rows = ended_rows([OPEN, rule, admin])
    assert [(r["challenger"], r["outcome"], r["decided by"], r["reason"], r["ended"]) for r in rows] == [
        ("v3", "promoted", "the rollout rule", "Promote: enough", "2026-12-07 14:00"),
        ("v2", "aborted", "ada (an admin, overriding the rule)", "slow", "2026-12-06 09:30")]
    assert decided_by_words(None) == "—"


def test_an_override_and_a_start_say_what_they_do_and_under_whose_name() -> None:
    assert override_words("promote", OPEN, "ada") == (
        "The API serves v3 for every prediction from now on (within seconds). This overrides the rollout rule and "
        "is recorded as your decision (ada, now), with the reason below.")
    assert override_words("abort", OPEN, "ada").startswith("v3 is discarded and v2 stays the champion. This overrides")
    said = start_words("4", "canary", "2", "ada")
    assert said.startswith("v4 becomes the challenger beside the champion v2. In canary the challenger answers")
    assert said.endswith("recorded as started by you (ada, now).")


def test_a_refusal_is_the_apis_sentence_and_a_503_says_the_api_is_unavailable() -> None:
    assert error_words(ApiError("Rollout 3 (version 3, shadow) is still open: promote or abort it first.", 409)) == (
        "Rollout 3 (version 3, shadow) is still open: promote or abort it first.")
    assert error_words(ApiError("The database is unavailable; try again shortly.", 503)) == (
        "The API is unavailable right now. The database is unavailable; try again shortly.")
