"""What a model version knows about its own answers: when to say "not sure" (abstain) and when an image looks like
nothing it was trained on (unfamiliar).

Both are fitted at training time (``model.learning.abstain``, ``model.learning.familiarity``) and travel in the
ONNX graph's metadata (``META_ABSTAIN``, ``META_UNFAMILIAR``); the unfamiliarity score itself is an output of the
graph. A model trained before them has neither: it never abstains and never calls an image unfamiliar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from model.serving.contract import META_ABSTAIN, META_UNFAMILIAR


@dataclass(frozen=True)
class AbstainRule:
    """Per-label confidence thresholds fitted to a precision target on out-of-fold predictions.

    A prediction of ``label`` with a confidence below ``thresholds[label]`` abstains; a label whose threshold is
    None never reached the target at any confidence, so its predictions always abstain. ``coverage``: the share
    of the out-of-fold predictions that did not abstain; ``precision``: the precision of those.
    """

    target: float
    thresholds: Mapping[str, float | None]
    coverage: float
    precision: float | None = None

    def abstains(self, label: str, confidence: float) -> bool:
        if label not in self.thresholds:
            return False  # a label the rule does not know (never happens for the graph it was fitted with)
        threshold = self.thresholds[label]
        return threshold is None or confidence < threshold

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "thresholds": dict(self.thresholds), "coverage": self.coverage,
                "precision": self.precision}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AbstainRule:
        return cls(target=float(data["target"]), thresholds={str(k): None if v is None else float(v)
                                                              for k, v in dict(data["thresholds"]).items()},
                   coverage=float(data["coverage"]), precision=None if data.get("precision") is None
                   else float(data["precision"]))


@dataclass(frozen=True)
class UnfamiliarRule:
    """An image is unfamiliar when its unfamiliarity (the cosine distance from its embedding to the nearest of
    ``reference_size`` label centroids of the training embeddings) is above ``threshold``, a quantile of the same
    distance for held-out in-domain images (``in_domain_rate`` of them were above it)."""

    threshold: float
    reference_size: int
    in_domain_rate: float

    def unfamiliar(self, score: float) -> bool:
        return score > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "reference_size": self.reference_size,
                "in_domain_rate": self.in_domain_rate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnfamiliarRule:
        return cls(threshold=float(data["threshold"]), reference_size=int(data["reference_size"]),
                   in_domain_rate=float(data["in_domain_rate"]))


@dataclass(frozen=True)
class Guards:
    """A model version's abstain and unfamiliar rules (each None for a model trained before them)."""

    abstain: AbstainRule | None = None
    unfamiliar: UnfamiliarRule | None = field(default=None)

    def abstains(self, label: str, confidence: float) -> bool:
        return self.abstain is not None and self.abstain.abstains(label, confidence)

    def is_unfamiliar(self, score: float | None) -> bool:
        return self.unfamiliar is not None and score is not None and self.unfamiliar.unfamiliar(score)

    def to_dict(self) -> dict[str, Any]:
        return {"abstain": None if self.abstain is None else self.abstain.to_dict(),
                "unfamiliar": None if self.unfamiliar is None else self.unfamiliar.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Guards:
        data = data or {}
        abstain, unfamiliar = data.get("abstain"), data.get("unfamiliar")
        return cls(abstain=None if abstain is None else AbstainRule.from_dict(abstain),
                   unfamiliar=None if unfamiliar is None else UnfamiliarRule.from_dict(unfamiliar))

    def metadata(self) -> dict[str, str]:
        """The graph's metadata entries that carry the rules."""
        entries = {}
        if self.abstain is not None:
            entries[META_ABSTAIN] = json.dumps(self.abstain.to_dict())
        if self.unfamiliar is not None:
            entries[META_UNFAMILIAR] = json.dumps(self.unfamiliar.to_dict())
        return entries

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> Guards:
        """The rules a graph's metadata carries (none for graphs from before them)."""
        abstain, unfamiliar = meta.get(META_ABSTAIN), meta.get(META_UNFAMILIAR)
        return cls(abstain=AbstainRule.from_dict(json.loads(abstain)) if abstain else None,
                   unfamiliar=UnfamiliarRule.from_dict(json.loads(unfamiliar)) if unfamiliar else None)
