"""Request and response models of the API."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from db.models import ChampionChangeKind, RolloutMode, RolloutOutcome, RunStatus, SampleSource, SampleStatus, Split
from model.reports.history import VersionRow


class UiPage(enum.StrEnum):
    """The Streamlit app's pages: the only values ``/events`` accepts (one Prometheus series each)."""

    PREDICT = "predict"
    REVIEW = "review"
    MODELS = "models"
    LOGIN = "login"


class PredictionPublic(BaseModel):
    label: str = Field(examples=["dandelion"], description="The most probable label, always (even when abstained).")
    confidence: float = Field(examples=[0.97])
    probabilities: dict[str, float] = Field(examples=[{"dandelion": 0.97, "grass": 0.03}])
    model_version: str | None = Field(examples=["3"])
    abstained: bool = Field(default=False, examples=[False], description=(
        "Not sure: the confidence is below the threshold fitted for this label to the precision target "
        "(`SPROUT_ABSTAIN_PRECISION`). False for a model trained before thresholds existed."))
    unfamiliar: bool = Field(default=False, examples=[False], description=(
        "The image looks like nothing the model was trained on (its embedding lies farther from every label's "
        "training images than all but a few held-out ones). False for a model trained before."))


class NearDuplicateLink(BaseModel):
    """An existing sample this one nearly duplicates (cosine similarity of their embeddings)."""

    id: int
    similarity: float


class NearDuplicatePublic(NearDuplicateLink):
    """A reviewer's view of a near-duplicate: also its label and status now."""

    label: str | None = None
    status: SampleStatus | None = None


class SamplePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    status: SampleStatus
    label: str | None
    suggested_label: str | None
    predicted_label: str | None
    confidence: float | None
    predicted_by_version: str | None
    predicted_unfamiliar: bool | None = Field(
        default=None, description="The prediction at submission called the image unfamiliar (the default order, "
                                  "uncertainty, lists these first); null: no prediction, or one from before.")
    source: SampleSource
    split: Split
    content_type: str
    size_bytes: int
    created_at: datetime
    reviewed_at: datetime | None
    reviewed_by: str | None
    duplicate_group: int | None = None
    near_duplicates: list[NearDuplicatePublic] = Field(default_factory=list)
    suggestion_conflict: str | None = Field(
        default=None, examples=["grass"],
        description="The label the sample's near-duplicate group was approved with, when the submitter's "
                    "suggestion contradicts it (null: no conflict)")

    @field_validator("near_duplicates", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []


class SampleReceipt(BaseModel):
    """What an (anonymous) uploader learns: its own submission, never a reviewer's name, label or split.

    An exact duplicate is not stored again: ``duplicate`` is true and the rest null, except, for a reviewer, the
    existing sample's ``id`` and ``status`` (an anonymous client learns no sample's id, nor whether it was approved).
    """

    model_config = ConfigDict(from_attributes=True)

    id: int | None = Field(description="The new sample's id; for an exact duplicate the existing one's, to a "
                                       "reviewer only (null for an anonymous client)")
    status: SampleStatus | None = Field(description="As id: null for an anonymous client's exact duplicate")
    duplicate: bool = False
    sha256: str | None = None
    suggested_label: str | None = None
    predicted_label: str | None = None
    confidence: float | None = None
    predicted_by_version: str | None = None
    near_duplicates: list[NearDuplicateLink] = Field(
        default_factory=list, examples=[[{"id": 12, "similarity": 0.93}]],
        description="The existing samples the image nearly duplicates; for reviewers only (it reveals "
                    "training-set membership): always empty for an anonymous upload")

    @field_validator("near_duplicates", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []
    source: SampleSource | None = None
    created_at: datetime | None = None


class SamplesPublic(BaseModel):
    data: list[SamplePublic]
    count: int | None = Field(description=(
        "Samples with the requested status; null on a page asked for by `cursor` (the first page gave it: "
        "counting grows with the list, the keyset page does not)."))
    next_cursor: str | None = Field(default=None, description=(
        "Pass as ``cursor`` for the next page (null on the last one): a keyset page, as quick 90,000 rows deep "
        "as on the first page."))


class LabelIssuePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sha256: str
    label: str
    suggested_label: str
    score: float = Field(description="How suspect the label is, 0-1 (1 - Cleanlab's label quality)")
    flagged: bool = Field(description="Cleanlab's find_label_issues counts it as a label error")
    evidence: Literal["out_of_fold", "out_of_sample"] = Field(
        description="What judged it: out_of_fold (a train/val sample: the cross-validation fold that held it out) "
                    "or out_of_sample (a test sample: the run's final head, trained on train+val)")


class LabelIssuesPublic(BaseModel):
    issues: list[LabelIssuePublic]


class DriftPublic(BaseModel):
    """Drift and health of live traffic: the newest predictions of the champion against its training set."""

    drift_score: float | None = Field(description="MMD² or domain-classifier AUC (see method); null: not computed")
    threshold: float | None = Field(description="Drift above this (the test's 1 - alpha quantile)")
    drifted: bool = Field(description="Score above threshold, with at least SPROUT_DRIFT_MIN_PREDICTIONS predictions")
    n: int = Field(description="Predictions in the window (with an embedding) the champion served")
    mean_confidence: float | None = Field(description="Mean calibrated confidence of those predictions")
    reference_mean_confidence: float | None = Field(description="The champion's mean confidence on its test split")
    novel_share: float | None = Field(default=None, description="Share of images unlike any training image")
    method: str = Field(examples=["auc"])
    model_version: str | None = None
    backbone: str | None = None
    reference_n: int = Field(default=0, description="Training embeddings compared with")
    reason: str | None = Field(default=None, description="Why drift is not declared (too few predictions, ...)")


class ReviewRequest(BaseModel):
    action: Literal["approve", "reject"] = Field(examples=["approve"])
    label: str | None = Field(default=None, max_length=64, examples=["grass"],
                              description="Approve with this label (a correction); default: the predicted one "
                                          "(never the submitter's suggestion).")


class RelabelRequest(BaseModel):
    label: str | None = Field(max_length=64, examples=["grass"],
                              description="The new label; null sends the sample back to the review queue.")


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    username: str
    is_admin: bool


class Me(BaseModel):
    """``GET /auth/me``: who the bearer token names, and the seconds it has left."""

    username: str
    is_admin: bool
    expires_in: int


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: RunStatus
    backbone: str
    labels: list[str]
    started_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None
    champion_version: str | None
    champion_metrics: dict[str, Any] | None
    gate_passed: bool | None
    gate_reason: str | None
    evidence: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = []
    registered_version: str | None
    promoted: bool
    n_embedded: int | None


class ChampionChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: ChampionChangeKind = Field(description="`run`: a training run's promotion; `promoted` or `rollback`: a "
                                                 "person's, to a newer or an older version; `rollout`: a "
                                                 "challenger promoted on live evidence")
    version: str
    previous: str | None
    changed_by: str = Field(description='The admin\'s user name, "run N", or "command line" (`sprout rollback`)')
    run_id: int | None
    created_at: datetime


class ModelsPublic(BaseModel):
    champion: str | None
    serving: str | None
    challenger: str | None = Field(default=None, description="The version scored beside the champion during a "
                                                             "rollout (`GET /rollouts`)")
    versions: list[VersionRow]
    runs: list[RunPublic]
    changes: list[ChampionChangePublic] = Field(
        default=[], description="Who made which version the champion and when, newest first (the latest 20)")


class PromoteResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    previous: str | None
    champion: str


class UsageEvent(BaseModel):
    page: UiPage = Field(examples=["predict"])
    action: Literal["view", "predict_click"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


class RetrainRequest(BaseModel):
    force: bool = Field(default=False, description="Train even with fewer new samples than the threshold.")


class DagRunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    dag_run_id: str | None
    state: str | None
    run_type: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    logical_date: datetime | None = None
    run_after: datetime | None = None


class RetrainRunPublic(DagRunPublic):
    """A retrain DAG run and what it did (Airflow says "success" also for a run that skipped training)."""

    outcome: Literal["queued", "running", "skipped", "promoted", "refused", "failed"] = Field(
        description="queued; running (`task`); skipped (`reason`: too few new samples); promoted (`version`); "
                    "refused by the gate (`reason`); failed (`task`).")
    reason: str | None = Field(default=None, description="Why it skipped training, or why the gate refused.")
    task: str | None = Field(default=None, description="The task running now (running) or that failed (failed).")
    training_run_id: int | None = Field(default=None, description="The Sprout training run it trained.")
    version: str | None = Field(default=None, description="The version it promoted.")
    airflow_url: str | None = Field(default=None, description="The run in Airflow's UI (SPROUT_AIRFLOW_PUBLIC_URL).")
    mlflow_url: str | None = Field(default=None, description="Its training run in MLflow's UI "
                                                             "(SPROUT_MLFLOW_PUBLIC_URL).")


class RetrainRuns(BaseModel):
    dag_id: str
    runs: list[RetrainRunPublic]


# --- taxonomy changes: /admin/labels ---


class LabelRenameRequest(BaseModel):
    to: str = Field(max_length=64, examples=["lawn"], description="The new name: no approved sample may have it.")


class LabelMergeRequest(BaseModel):
    into: str = Field(max_length=64, examples=["grass"], description="The existing label that takes the samples.")


class LabelRetrainPublic(BaseModel):
    triggered: bool = Field(description="Whether Airflow started a (forced) retrain run.")
    detail: str = Field(description="Its run, or why not (the next retrain-check is due either way).")
    dag_run_id: str | None = None


class LabelChangePublic(BaseModel):
    id: int
    kind: Literal["rename", "merge", "retire"]
    label: str
    into: str | None = Field(description="The label it became; null: retired.")
    changed_by: str
    approved: int = Field(description="Approved samples relabelled (rename, merge) or rejected (retire).")
    pending: int = Field(description="Pending samples whose prediction or suggestion took the new name.")
    created_at: datetime
    retrain: LabelRetrainPublic | None = Field(default=None, description="The retrain it asked for (changes only).")


class LabelSummaryPublic(BaseModel):
    label: str
    approved: int
    pending: int = Field(description="Pending samples predicted or suggested as this label.")


class LabelsPublic(BaseModel):
    labels: list[LabelSummaryPublic]
    changes: list[LabelChangePublic] = Field(description="The latest taxonomy changes, newest first.")


class RecentReviewPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sample_id: int
    action: Literal["approve", "correct", "reject"]
    old_label: str | None = Field(description="The label the sample had before the decision (prediction or "
                                              "suggestion).")
    new_label: str | None = Field(description="The label it decided; null: rejected.")
    created_at: datetime
    undoable: bool = Field(description="The decision is the sample's latest change, the sample still holds it, and "
                                       "the undo window is open.")
    undoable_until: datetime | None = Field(description="When the undo window closes; null: not undoable.")


class RecentReviewsPublic(BaseModel):
    reviews: list[RecentReviewPublic] = Field(description="The calling reviewer's own decisions, newest first.")
    undo_seconds: int = Field(description="How long a decision can be undone (SPROUT_REVIEW_UNDO_SECONDS; 0: off).")


class RolloutDecisionPublic(BaseModel):
    action: Literal["promote", "abort", "wait"]
    reason: str


class RolloutPublic(BaseModel):
    """A rollout: the challenger against the champion on live traffic, its evidence and its decision."""

    id: int
    challenger: str
    champion: str | None = Field(description="The champion when it started")
    mode: RolloutMode
    started_by: str = Field(description='"run N", the admin\'s user name, or "command line"')
    run_id: int | None
    started_at: datetime
    open: bool
    ended_at: datetime | None
    outcome: RolloutOutcome | None = Field(description="`promoted` or `aborted` once decided")
    reason: str | None = Field(description="Why it ended (the rule's sentence, or the person's reason)")
    decided_by: str | None = Field(description='"rule", or the admin\'s user name')
    evidence: dict[str, Any] = Field(description="The live comparison in numbers (docs: rollout)")
    summary: str = Field(description="The live comparison in plain words")
    decision: RolloutDecisionPublic | None = Field(description="An open rollout: what the rule would do now")


class RolloutsPublic(BaseModel):
    challenger: str | None = Field(description="The version the API scores beside the champion, if any")
    rollouts: list[RolloutPublic] = Field(description="The latest rollouts, newest first")


class RolloutStart(BaseModel):
    version: str = Field(min_length=1, max_length=32, description="A registered version a Sprout run trained")
    mode: RolloutMode = RolloutMode.SHADOW


class RolloutDecisionRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=500, description="Why (recorded with the decision)")
    rollout_id: int | None = Field(default=None, description="The rollout the decision is about (the one shown to "
                                                               "the admin): 409 when another one is open now")
