"""Settings of retention (``SPROUT_*``): what ``sprout gc --apply`` deletes; part of the one ``Settings`` object."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetentionSettings(BaseModel):
    """How long what grows with traffic is kept (docs/operations/retention.md)."""

    retain_rejected_days: int = Field(
        default=90, ge=0,
        description="`sprout gc --apply` deletes a rejected sample (its row, image, cached embeddings and review "
                    "rows) this many days after its last change, unless a training run's lineage or a "
                    "near-duplicate group still refers to it; sent again later, the image is queued again. "
                    "0 keeps rejected samples forever.")
    retain_rollout_observations_days: int = Field(
        default=90, ge=0,
        description="`sprout gc --apply` deletes an ended rollout's live observations this many days after it "
                    "ended (the rollout's row, outcome and reason stay); the open rollout's are never deleted. "
                    "0 keeps them forever.")
    retain_run_lineage_days: int = Field(
        default=90, ge=0,
        description="`sprout gc --apply` deletes the lineage (sample, split and label used) of a training run "
                    "that registered no version and did not pass the gate, this many days after it finished; the "
                    "run's row and metrics stay, as does the lineage of every registered version, of every "
                    "gate-passed run and of the latest successful run. 0 keeps all lineage.")
    gc_orphan_grace_hours: float = Field(
        default=24, ge=1,
        description="`sprout gc --apply` deletes an image in Sprout's key layout that no sample names, and a "
                    "cached embedding of an image no sample has, once older than this (an upload in flight "
                    "stores its image just before its row).")
