"""One selection rule for the in-process run and the DAG: the lowest cross-validated log loss among the
`assess-candidate` answers, the first listed on a tie; rows read back from JSON unchanged."""

from __future__ import annotations

import json

import pytest

from model.core.errors import NotEnoughDataError, SproutError
from model.learning.candidates import AssessedCandidate, merge_candidates, parse_assessed, select_candidate

ANSWERS = [  # as `sprout assess-candidate --json` prints them
    {"backbone": "efficientnet_lite0", "accuracy": 0.93, "accuracy_ci": [0.88, 0.96], "log_loss": 0.21, "folds": 5,
     "weight_decay": 0.001, "n_embedded": 300},
    {"backbone": "efficientnet_lite1", "accuracy": 0.95, "accuracy_ci": [0.91, 0.97], "log_loss": 0.17, "folds": 5,
     "weight_decay": 0.01, "n_embedded": 300},
    {"backbone": "efficientnet_lite2", "accuracy": 0.95, "accuracy_ci": [0.91, 0.97], "log_loss": 0.17, "folds": 5,
     "weight_decay": 0.01, "n_embedded": 0},
]


def test_the_lowest_log_loss_wins_and_the_first_on_a_tie() -> None:
    choice = select_candidate(parse_assessed(json.loads(json.dumps(ANSWERS)), source="--tried"))
    assert choice.winner.backbone == "efficientnet_lite1" and choice.selected == 1
    assert choice.to_dict() == {"backbone": "efficientnet_lite1", "tried": ANSWERS}  # the DAG's XCom, unchanged


def test_no_candidate_and_malformed_answers_are_refused() -> None:
    with pytest.raises(NotEnoughDataError, match="no candidate"):
        select_candidate([])
    with pytest.raises(SproutError, match=r"^--tried must be a JSON list of `assess-candidate` answers \(backbone, "
                                          r"accuracy, log_loss\)\.$"):
        parse_assessed([{"backbone": "x", "accuracy": 0.9}], source="--tried")
    with pytest.raises(SproutError):
        parse_assessed({"backbone": "x"}, source="--tried")


def test_a_short_answer_gets_the_defaults() -> None:
    row = AssessedCandidate.from_dict({"backbone": "x", "accuracy": 0.9, "log_loss": 0.3})
    assert row.to_dict() == {"backbone": "x", "accuracy": 0.9, "accuracy_ci": None, "log_loss": 0.3, "folds": None,
                             "weight_decay": None, "n_embedded": 0}


def test_merging_replaces_the_dag_rows_with_the_runs_own_and_adds_their_embedding_work() -> None:
    tried = [AssessedCandidate.from_dict(a) for a in ANSWERS[:2]]
    here = [AssessedCandidate("efficientnet_lite1", accuracy=0.96, log_loss=0.16, n_embedded=5),
            AssessedCandidate("dinov2_small", accuracy=0.9, log_loss=0.4, n_embedded=310)]
    merged = merge_candidates(tried, here)
    assert [c.backbone for c in merged] == ["efficientnet_lite0", "efficientnet_lite1", "dinov2_small"]
    assert merged[0] is tried[0] and merged[1].accuracy == 0.96 and merged[1].n_embedded == 305
