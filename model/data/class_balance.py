"""Class balance of the approved samples: each label's share, overall and per split, and a warning for a label
that is under-represented — fewer approved samples than ``min_ratio`` (``SPROUT_IMBALANCE_MIN_RATIO``) times the
mean per label. Pure arithmetic on counts: the training run, ``/admin/stats`` and the Review page report it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from db.models import Sample, Split


@dataclass(frozen=True)
class ClassShare:
    """One label's approved samples: how many, their share of all, per split, and whether it is under-represented."""

    label: str
    count: int
    share: float
    split_counts: dict[str, int]
    split_shares: dict[str, float]
    under_represented: bool


@dataclass(frozen=True)
class ClassBalance:
    """Every label's share (largest first), the count below which a label is under-represented, the warnings."""

    classes: list[ClassShare]
    min_count: float
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_per_split(samples: Iterable[Sample]) -> dict[str, Counter[Split]]:
    """``{label: {split: samples}}`` of labelled samples."""
    per_split: dict[str, Counter[Split]] = {}
    for sample in samples:
        if sample.label:
            per_split.setdefault(sample.label, Counter())[sample.split] += 1
    return per_split


def missing_for_balance(count: int, total: int, n_labels: int, min_ratio: float) -> int:
    """Approvals of one label that lift it to ``min_ratio`` × the mean per label (each also raises the mean)."""
    need = (min_ratio * total / n_labels - count) / (1 - min_ratio / n_labels)
    return max(0, math.ceil(need - 1e-9))


def class_balance(per_split: Mapping[str, Mapping[Split, int]], *, min_ratio: float) -> ClassBalance:
    """The balance of ``{label: {split: approved count}}``. A label is under-represented when its count is below
    ``min_ratio`` × the mean count per label; with fewer than two labels none is."""
    counts = {label: sum(splits.values()) for label, splits in per_split.items()}
    counts = {label: n for label, n in counts.items() if n > 0}
    total, n_labels = sum(counts.values()), len(counts)
    split_totals = {split: sum(per_split[label].get(split, 0) for label in counts) for split in Split}
    min_count = min_ratio * total / n_labels if n_labels >= 2 else 0.0
    classes, warnings = [], []
    for label in sorted(counts, key=lambda label: (-counts[label], label)):
        count, splits = counts[label], per_split[label]
        under = count < min_count
        classes.append(ClassShare(
            label=label, count=count, share=count / total,
            split_counts={split.value: splits.get(split, 0) for split in Split},
            split_shares={split.value: splits.get(split, 0) / split_totals[split] if split_totals[split] else 0.0
                          for split in Split},
            under_represented=under))
        if under:
            found = ", ".join(f"{splits[split]} {split.value}" for split in Split if splits.get(split))
            warnings.append(
                f"Label {label!r} is under-represented: {count} approved samples ({found}), {count / total:.1%} "
                f"of {total}, fewer than {min_ratio:.0%} of the mean {total / n_labels:.1f} per label; "
                f"{missing_for_balance(count, total, n_labels, min_ratio)} more approvals would reach it.")
    return ClassBalance(classes=classes, min_count=min_count, warnings=warnings)
