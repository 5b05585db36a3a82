"""Class balance: shares per label and split, and which labels are under-represented."""

from __future__ import annotations

from collections import Counter

import pytest

from db.models import Split
from model.data.class_balance import class_balance, missing_for_balance


def counts(train: int, val: int = 0, test: int = 0) -> Counter[Split]:
    return Counter({Split.TRAIN: train, Split.VAL: val, Split.TEST: test})


def test_shares_per_label_and_split_largest_first() -> None:
    balance = class_balance({"b": counts(6, 1, 1), "a": counts(14, 2, 4), "c": counts(8, 2, 2)}, min_ratio=0.5)
    assert [c.label for c in balance.classes] == ["a", "c", "b"]
    a = balance.classes[0]
    assert a.count == 20 and a.share == pytest.approx(20 / 40)
    assert a.split_counts == {"train": 14, "val": 2, "test": 4}
    assert a.split_shares == pytest.approx({"train": 14 / 28, "val": 2 / 5, "test": 4 / 7})
    assert sum(c.share for c in balance.classes) == pytest.approx(1.0)
    assert balance.min_count == pytest.approx(0.5 * 40 / 3)
    assert not balance.warnings and not any(c.under_represented for c in balance.classes)


def test_a_label_below_half_the_mean_is_under_represented_with_a_warning() -> None:
    per_split = {label: counts(50, 5, 5) for label in ("buildings", "forest", "glacier", "mountain", "sea")}
    per_split["street"] = counts(12, 0, 3)  # 15 against a mean of 52.5: below half of it
    balance = class_balance(per_split, min_ratio=0.5)
    assert [c.label for c in balance.classes if c.under_represented] == ["street"]
    [warning] = balance.warnings
    assert warning.startswith("Label 'street' is under-represented: 15 approved samples (12 train, 3 test)")
    assert "50% of the mean 52.5 per label" in warning
    missing = missing_for_balance(15, 315, 6, 0.5)
    assert f"; {missing} more approvals would reach it." in warning
    # that many more lift it to the threshold, one fewer does not
    after = class_balance(per_split | {"street": counts(12 + missing, 0, 3)}, min_ratio=0.5)
    before = class_balance(per_split | {"street": counts(12 + missing - 1, 0, 3)}, min_ratio=0.5)
    assert not after.warnings and len(before.warnings) == 1


def test_a_stricter_ratio_flags_more_labels_and_one_label_is_never_imbalanced() -> None:
    per_split = {"a": counts(30), "b": counts(20), "c": counts(10)}
    assert [c.label for c in class_balance(per_split, min_ratio=0.5).classes if c.under_represented] == []
    assert [c.label for c in class_balance(per_split, min_ratio=0.9).classes if c.under_represented] == ["c"]
    assert class_balance({"a": counts(3)}, min_ratio=1.0).warnings == []
    empty = class_balance({"a": counts(0), "b": counts(4)}, min_ratio=1.0)  # a label with no sample is no class
    assert [c.label for c in empty.classes] == ["b"] and not empty.warnings


def test_two_classes_ten_classes() -> None:
    ten = {f"label{i}": counts(10 + i) for i in range(9)} | {"rare": counts(2)}
    balance = class_balance(ten, min_ratio=0.5)
    assert len(balance.classes) == 10 and [c.label for c in balance.classes][-1] == "rare"
    assert [c.label for c in balance.classes if c.under_represented] == ["rare"]
    assert class_balance({"x": counts(10), "y": counts(3)}, min_ratio=0.5).warnings  # 3 < 0.5 * 6.5
    assert not class_balance({"x": counts(10), "y": counts(4)}, min_ratio=0.5).warnings  # 4 ≥ 0.5 * 7
