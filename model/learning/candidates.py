"""The candidates a run tries, one per backbone, and the rule that picks one: the lowest cross-validated log loss.

One rule for both paths: a run that assesses its candidates itself, and the retrain DAG, whose mapped tasks print
``sprout assess-candidate --json`` answers that ``select_candidate`` chooses among. Pure Python: cheap to import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from model.core.errors import NotEnoughDataError, SproutError
from model.learning.evidence import Interval

REQUIRED = ("backbone", "accuracy", "log_loss")


@dataclass(frozen=True)
class AssessedCandidate:
    """One backbone's candidate, cross-validated over the train+val samples: the JSON of
    ``sprout assess-candidate`` and a row of a run's candidates table (run record, MLflow, the API)."""

    backbone: str
    accuracy: float
    log_loss: float
    accuracy_ci: Interval | None = None
    folds: int | None = None
    weight_decay: float | None = None
    n_embedded: int = 0  # images embedded (not found in the cache) to assess it

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "accuracy": self.accuracy,
                "accuracy_ci": None if self.accuracy_ci is None else list(self.accuracy_ci),
                "log_loss": self.log_loss, "folds": self.folds, "weight_decay": self.weight_decay,
                "n_embedded": self.n_embedded}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> AssessedCandidate:
        """A stored or printed row; only ``REQUIRED`` keys must be there (a row given with ``--tried``)."""
        ci = stored.get("accuracy_ci")
        return cls(backbone=stored["backbone"], accuracy=stored["accuracy"], log_loss=stored["log_loss"],
                   accuracy_ci=None if ci is None else (ci[0], ci[1]), folds=stored.get("folds"),
                   weight_decay=stored.get("weight_decay"), n_embedded=int(stored.get("n_embedded") or 0))


def parse_assessed(rows: object, *, source: str) -> list[AssessedCandidate]:
    """``assess-candidate`` answers read from JSON (``rows``, as ``json.loads`` gave them); SproutError naming
    ``source`` (e.g. ``--tried``) unless a list of objects, each with ``REQUIRED`` keys."""
    wrong = SproutError(f"{source} must be a JSON list of `assess-candidate` answers ({', '.join(REQUIRED)}).")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and set(REQUIRED) <= set(r) for r in rows):
        raise wrong
    try:
        return [AssessedCandidate.from_dict(row) for row in rows]
    except (IndexError, KeyError, TypeError, ValueError) as exc:  # e.g. an accuracy_ci that is not a pair
        raise wrong from exc


@dataclass(frozen=True)
class CandidateChoice:
    """The candidates tried, in the order given, and which one was selected."""

    tried: tuple[AssessedCandidate, ...]
    selected: int  # index into ``tried``

    @property
    def winner(self) -> AssessedCandidate:
        return self.tried[self.selected]

    def to_dict(self) -> dict[str, Any]:
        """``{"backbone": the winner's, "tried": [every row]}``: what the DAG's training task reads."""
        return {"backbone": self.winner.backbone, "tried": [c.to_dict() for c in self.tried]}


def select_candidate(assessed: Sequence[AssessedCandidate]) -> CandidateChoice:
    """The candidate with the lowest cross-validated log loss (the first listed on a tie)."""
    if not assessed:
        raise NotEnoughDataError("no candidate was assessed")
    return CandidateChoice(tried=tuple(assessed), selected=min(range(len(assessed)),
                                                               key=lambda i: assessed[i].log_loss))


def merge_candidates(tried: Sequence[AssessedCandidate],
                     here: Sequence[AssessedCandidate]) -> list[AssessedCandidate]:
    """The candidates a run tried: those assessed elsewhere (the DAG's mapped tasks), each replaced by the one
    assessed here for the same backbone, whose ``n_embedded`` adds the other's (the embedding work of the run);
    then those only assessed here."""
    fresh = {c.backbone: c for c in here}
    merged = []
    for other in tried:
        mine = fresh.pop(other.backbone, None)
        merged.append(other if mine is None else replace(mine, n_embedded=mine.n_embedded + other.n_embedded))
    return merged + list(fresh.values())


@dataclass(frozen=True)
class Dominance:
    """A backbone that won the last runs clearly enough for a run to assess only it, and why."""

    backbone: str
    skipped: tuple[str, ...]
    reason: str


def dominant_backbone(history: Sequence[Sequence[AssessedCandidate]], names: Sequence[str], *, runs: int,
                      margin: float) -> Dominance | None:
    """The backbone of ``names`` a run may assess alone, or None (assess all).

    ``history``: the candidates of the latest succeeded runs, newest first. A run *assessed all* when its
    candidates cover every one of ``names``. One backbone dominates when it won each of the latest ``runs`` such
    runs with a cross-validated log loss at least ``margin`` below every other candidate's. Runs that assessed
    fewer (skipping ones) do not count as evidence, and after ``runs`` of them in a row (newest first, before the
    latest run that assessed all) the next run assesses all again, so a backbone that stopped dominating is seen.
    """
    if runs <= 0 or len(names) < 2:
        return None
    wanted = set(names)
    full: list[Sequence[AssessedCandidate]] = []
    in_a_row = 0
    for tried in history:
        if wanted <= {c.backbone for c in tried}:
            full.append(tried)
            if len(full) == runs:
                break
        elif not full:
            in_a_row += 1
    if in_a_row >= runs or len(full) < runs:
        return None
    winners = set()
    for tried in full:
        mine = [c for c in tried if c.backbone in wanted]
        best = min(mine, key=lambda c: c.log_loss)
        if any(c.log_loss - best.log_loss < margin for c in mine if c.backbone != best.backbone):
            return None
        winners.add(best.backbone)
    if len(winners) != 1:
        return None
    (backbone,) = winners
    return Dominance(backbone=backbone, skipped=tuple(n for n in names if n != backbone),
                     reason=f"{backbone} won each of the last {runs} runs that assessed every candidate by at least "
                            f"{margin:g} in cross-validated log loss ({in_a_row} run(s) since assessed only it)")
