"""Recorded taxonomy changes carry old labels to today's: a chain of renames, merges summing columns, a retired
column dropped and the rows renormalised."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from model.data.label_changes import columns_through, follow, label_map


@dataclass(frozen=True)
class Change:
    label: str
    into: str | None


def test_follow_carries_a_label_through_renames_merges_an_undo_and_a_retirement() -> None:
    changes = [Change("sea", "ocean"), Change("lake", "ocean"), Change("ocean", "water"), Change("fog", None),
               Change("water", "sea")]  # the last one undoes the rename, under the first name
    assert follow("sea", changes) == "sea"
    assert follow("lake", changes) == "sea"
    assert follow("ocean", changes) == "sea"
    assert follow("fog", changes) is None
    assert follow("forest", changes) == "forest"
    assert label_map(["fog", "lake", "forest"], changes) == {"fog": None, "lake": "sea", "forest": "forest"}


def test_columns_through_renames_sums_merged_columns_and_drops_a_retired_one() -> None:
    labels = ["forest", "glacier", "mountain", "sea", "street"]
    proba = np.array([[0.10, 0.20, 0.30, 0.25, 0.15],
                      [0.00, 0.00, 0.00, 0.00, 1.00],
                      [0.50, 0.10, 0.10, 0.20, 0.10]])
    changes = [Change("sea", "ocean"), Change("glacier", "mountain"), Change("street", None)]
    mapped, current = columns_through(proba, labels, changes)
    assert current == ["forest", "mountain", "ocean"]
    without_street = np.array([[0.10, 0.50, 0.25], [0.0, 0.0, 0.0], [0.50, 0.20, 0.20]])
    expected = without_street / np.maximum(without_street.sum(axis=1, keepdims=True), 1e-12)
    expected[1] = 1 / 3  # all its mass was on the retired label: no preference left
    assert mapped == pytest.approx(expected)
    assert mapped.sum(axis=1) == pytest.approx(np.ones(3))
    assert mapped.argmax(axis=1).tolist() == [1, 0, 0]


def test_columns_through_without_changes_is_the_identity() -> None:
    proba = np.array([[0.7, 0.3]])
    mapped, labels = columns_through(proba, ["a", "b"], [Change("c", "d")])
    assert mapped is proba and labels == ["a", "b"]


def test_without_stale_leaves_out_samples_still_under_a_renamed_or_retired_label() -> None:
    """The safety net under training: a sample a racing review left under an old name never trains as it."""
    from db.models import Sample
    from model.data.label_changes import without_stale

    changes = [Change("sea", "ocean"), Change("street", None), Change("ocean", "water"), Change("water", "sea")]
    samples = [Sample(id=i, label=label) for i, label in enumerate(["sea", "ocean", "street", "street", "forest"])]
    kept, warnings = without_stale(samples, changes)
    assert [s.label for s in kept] == ["sea", "forest"]  # sea is today's name again (undone)
    assert warnings == ["1 approved sample still labelled 'ocean', which is now 'sea': left out of training "
                        "(relabel them).",
                        "2 approved samples still labelled 'street', which was retired: left out of training "
                        "(relabel them)."]
