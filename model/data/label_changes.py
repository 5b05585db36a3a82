"""What the recorded taxonomy changes (``label_changes``: rename, merge, retire) mean for a label today.

Applied in order, the changes map any older label to the current one (None: retired): the champion's output
columns before the gate compares it with a candidate (``columns_through``), a stale name a reviewer or the model
still uses (``current_label``), and whether a retrain is due because labels changed since the last run.
The changes themselves are made by ``model.review.taxonomy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from sqlalchemy.orm import Session

from db import queries
from db.models import LabelChange, LabelChangeKind, Sample
from model.core.errors import InvalidLabelError

LABELS_LOCK = 0x5350524C  # advisory-lock key ("SPRL"): reviews hold it shared, a label change exclusively


class Change(Protocol):
    """One recorded change (a ``LabelChange`` row): ``label`` became ``into``; None when it was retired."""

    @property
    def label(self) -> str: ...

    @property
    def into(self) -> str | None: ...


class Described(Change, Protocol):
    """A change with its kind (``rename``, ``merge``, ``retire``) and its author."""

    @property
    def kind(self) -> str: ...

    @property
    def changed_by(self) -> str: ...


def follow(label: str, changes: Sequence[Change]) -> str | None:
    """``label`` carried through ``changes`` in order: its current name, or None once a change retired it."""
    current: str | None = label
    for change in changes:
        if current is not None and change.label == current:
            current = change.into
    return current


def label_map(labels: Sequence[str], changes: Sequence[Change]) -> dict[str, str | None]:
    """Each of ``labels`` (say, a model's output columns) mapped to its current label (None: retired)."""
    return {label: follow(label, changes) for label in labels}


def columns_through(proba: np.ndarray, labels: Sequence[str],
                    changes: Sequence[Change]) -> tuple[np.ndarray, list[str]]:
    """A model's probabilities over ``labels`` re-expressed over today's labels: a renamed column takes the new
    name, merged columns are summed, a retired label's column is dropped and every row renormalised (a row that
    put all its mass on retired labels becomes uniform). Returns ``(proba, labels)``, the labels sorted."""
    mapping = label_map(labels, changes)
    current = sorted({to for to in mapping.values() if to is not None})
    if current == list(labels):
        return proba, list(labels)
    index = {label: j for j, label in enumerate(current)}
    mapped = np.zeros((proba.shape[0], len(current)), dtype=np.float64)
    for column, label in enumerate(labels):
        target = mapping[label]
        if target is not None:
            mapped[:, index[target]] += proba[:, column]
    totals = mapped.sum(axis=1, keepdims=True)
    uniform = np.full_like(mapped, 1.0 / max(len(current), 1))
    return np.where(totals > 0, mapped / np.where(totals > 0, totals, 1.0), uniform), current


def changes_after_run(session: Session, run_id: str | int | None) -> list[LabelChange]:
    """The changes made after training run ``run_id`` started (a model's ``sprout.training_run``): those its
    labels have not seen. All of them when the run is unknown."""
    run = queries.get_run(session, run_id=int(run_id)) if run_id is not None and str(run_id).isdigit() else None
    return queries.label_changes(session, since=run.started_at if run is not None else None)


def hold_labels(session: Session, *, change: bool = False) -> None:
    """Serialise approvals against label changes until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway): a review holds the lock shared, so a rename, merge or retire (``change``) waits for the
    reviews in flight and they wait for it; read ``current_label`` after taking it, in the same transaction."""
    queries.hold_lock(session, key=LABELS_LOCK, shared=not change)


def without_stale(samples: Sequence[Sample], changes: Sequence[Change]) -> tuple[list[Sample], list[str]]:
    """``samples`` less those whose label a change renamed, merged or retired since (none should be left: a
    safety net under training), and a warning per such label."""
    stale: dict[str, int] = {}
    kept = []
    for sample in samples:
        now = follow(sample.label or "", changes)
        if now == sample.label:
            kept.append(sample)
        else:
            stale[sample.label or ""] = stale.get(sample.label or "", 0) + 1
    warnings = [f"{n} approved sample{'s' if n > 1 else ''} still labelled {label!r}, which "
                f"{'was retired' if follow(label, changes) is None else f'is now {follow(label, changes)!r}'}: "
                "left out of training (relabel them)." for label, n in sorted(stale.items())]
    return kept, warnings


def current_label(session: Session, label: str) -> str:
    """``label`` as it is called today (a renamed or merged label's new name); InvalidLabelError once retired."""
    current: str = label
    for change in queries.label_changes(session):
        if change.label != current:
            continue
        if change.into is None:
            raise InvalidLabelError(f"Label {label!r} was retired by {change.changed_by}: choose another label.")
        current = change.into
    return current


def retrain_reason(session: Session) -> str | None:
    """Why a retrain is due although few samples were approved: labels changed after the last successful run
    started (its model still knows the old ones). None when nothing changed since."""
    run = queries.last_succeeded_run(session)
    if run is None:
        return None
    changes = queries.label_changes(session, since=run.started_at)
    if not changes:
        return None
    return "labels changed since the last training run (" + "; ".join(describe(c) for c in changes) + ")"


def describe(change: Described) -> str:
    """``rename a → b``, ``merge a into b`` or ``retire a``, by whom."""
    if change.kind == LabelChangeKind.RETIRE:
        what = f"retire {change.label}"
    elif change.kind == LabelChangeKind.MERGE:
        what = f"merge {change.label} into {change.into}"
    else:
        what = f"rename {change.label} → {change.into}"
    return f"{what} by {change.changed_by}"
