"""The run's record of what judged each sample's label: out-of-fold (train+val) and out-of-sample (test) parts."""

from __future__ import annotations

import numpy as np

from model.learning.label_evidence import LabelEvidence


def test_the_record_keeps_the_out_of_fold_part_where_old_runs_had_it_and_reads_back() -> None:
    evidence = LabelEvidence(labels=["a", "b", "c"], sample_ids=[4, 7, 9], out_of_sample=np.array([False, True, False]),
                             proba=np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]]))
    stored = evidence.to_dict()
    assert stored == {"labels": ["a", "b", "c"], "sample_ids": [4, 9],
                      "proba": [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]],
                      "out_of_sample": {"sample_ids": [7], "proba": [[0.1, 0.1, 0.8]]}}
    back = LabelEvidence.from_dict(stored)
    assert back is not None and back.sample_ids == [4, 9, 7]
    assert [back.source(i) for i in range(3)] == ["out_of_fold", "out_of_fold", "out_of_sample"]
    assert np.allclose(back.proba, [[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])


def test_a_record_from_before_the_test_part_reads_as_out_of_fold_only() -> None:
    old = {"sample_ids": [1, 2], "labels": ["a", "b"], "proba": [[0.9, 0.1], [0.3, 0.7]]}
    back = LabelEvidence.from_dict(old)
    assert back is not None and back.sample_ids == [1, 2] and not back.out_of_sample.any()
    assert back.proba.shape == (2, 2)
    assert LabelEvidence.from_dict(None) is None and LabelEvidence.from_dict({"sample_ids": []}) is None
