"""The one settings object, read from ``SPROUT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, computed_field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.core.faults import CrashPoint
from model.core.retention_settings import RetentionSettings
from model.core.rollout_settings import RolloutSettings
from model.core.training_settings import TrainingSettings

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "password", "minioadmin"}
RATE_LIMIT_STORES = re.compile(r"^(memory|redis|rediss|redis\+unix)://")


class Settings(TrainingSettings, RolloutSettings, RetentionSettings, BaseSettings):
    """Sprout configuration. Defaults give the embedded mode: everything under ``home``. Training, rollout and
    retention settings live in modules of their own (``*_settings.py``), one object still."""

    model_config = SettingsConfigDict(
        env_prefix="SPROUT_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses placeholder secrets.")
    home: Path = Field(
        default=Path(".sprout"),
        description="State directory of the embedded mode (SQLite DB, object store, MLflow store, caches).")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. `postgresql://user:pass@host/db`. Default: SQLite in `SPROUT_HOME`.")

    s3_endpoint: str | None = Field(
        default=None,
        description="`host:port` of MinIO or any S3; enables the S3 store. Default: a local directory.")
    s3_access_key: str | None = Field(default=None, description="Required with `SPROUT_S3_ENDPOINT`.")
    s3_secret_key: SecretStr | None = Field(default=None, description="Required with `SPROUT_S3_ENDPOINT`.")
    s3_bucket: str = Field(default="sprout", description="Bucket (created when missing).")
    s3_secure: bool = Field(default=False, description="Use HTTPS.")
    s3_region: str | None = Field(
        default=None,
        description="Region of the S3 endpoint, for request signing (unset: the S3 client's default; imports "
                    "use `us-east-1`).")
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket (isolates tenants/tests).")

    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking/registry URI, e.g. `http://mlflow:5000`. Default: a SQLite store in "
                    "`SPROUT_HOME`.")
    mlflow_experiment: str = Field(default="sprout", description="MLflow experiment name.")
    model_name: str = Field(default="sprout-classifier", description="Registered model name.")

    max_upload_mb: float = Field(default=10, gt=0, description="Upload size limit (the Streamlit app's too).")
    max_image_megapixels: float = Field(
        default=24, gt=0, le=50,
        description="Decode limit for images to classify or submit, in megapixels (checked from the header; a "
                    "pixel-bomb guard; 50 at most).")

    near_dup_threshold: float = Field(
        default=0.70, ge=-1.0, le=1.0,
        description="An upload is a near-duplicate of a sample when both hold: embedding cosine ≥ this, "
                    "perceptual-hash distance ≤ `SPROUT_NEAR_DUP_MAX_HASH_DISTANCE`; `bench/near_duplicates.py` "
                    "chose the pair; a near-duplicate takes its group's split.")
    near_dup_max_hash_distance: int = Field(
        default=18, ge=0, le=64,
        description="Largest perceptual-hash distance (bits of 64) of a near-duplicate (with "
                    "`SPROUT_NEAR_DUP_THRESHOLD`).")

    abstain_precision: float = Field(
        default=0.95, gt=0.0, le=1.0,
        description="Precision target of the abstain thresholds: per label, the lowest confidence whose "
                    "out-of-fold predictions of that label are right this often; below it a prediction says "
                    "`abstained` (\"not sure\"). A label that never reaches it always abstains. "
                    "`bench/abstain.py` measures it.")
    unfamiliar_rate: float = Field(
        default=0.04, gt=0.0, lt=0.5,
        description="Share of held-out in-domain images whose embedding distance to the nearest label centroid "
                    "lies above the unfamiliarity threshold: an image farther than that is `unfamiliar` (looks "
                    "like nothing the model was trained on). `bench/abstain.py` measures both sides of it: "
                    "more flags more photos of other label sets, and more of the model's own.")
    capture_below: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Production capture, a privacy choice: `/predict` images whose calibrated confidence is "
                    "below this are kept as pending samples (`source=capture`) for review; off unless set.")
    capture_sample_rate: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Also capture this random share of all predictions (0: none).")
    capture_per_hour: int = Field(
        default=100, ge=0,
        description="Cap on captures an hour, counted in the database (all workers together, under a PostgreSQL "
                    "advisory lock); an image is never captured twice; capture runs on a background thread with "
                    "a bounded queue (a full queue drops, `sprout_captures_total{result}` counts every "
                    "outcome).")
    capture_per_day: int = Field(
        default=1000, ge=0,
        description="Cap on captures a day, counted like `SPROUT_CAPTURE_PER_HOUR`.")

    drift_window: int = Field(
        default=500, ge=10, le=100_000,
        description="Recent predictions kept in the database (table `recent_predictions`, shared by every API "
                    "worker, kept across restarts; the writer prunes the rest).")
    drift_buffer: int = Field(
        default=1000, ge=1,
        description="Predictions buffered in memory before they are written (in batches, by a background "
                    "thread: `/predict` never waits on the database); a full buffer or a failed write drops "
                    "them, as does a non-finite prediction (alone), counted in "
                    "`sprout_drift_window_dropped_total`.")
    drift_flush_seconds: float = Field(default=2.0, gt=0, description="How often buffered predictions are written.")
    drift_min_predictions: int = Field(default=30, ge=2, description="Predictions needed before drift is declared.")
    drift_method: Literal["mmd", "auc"] = Field(
        default="mmd",
        description="`mmd` (RBF-kernel MMD², permutation threshold) or `auc` (a domain classifier's "
                    "cross-validated AUC); `bench/drift.py` chose `mmd`.")
    drift_alpha: float = Field(
        default=0.01, gt=0.0, lt=0.5,
        description="Level of the drift test (the threshold is its 1 - alpha quantile).")
    drift_permutations: int = Field(
        default=200, ge=20, le=10_000,
        description="Permutations of the MMD threshold (seeded by `SPROUT_SEED`).")
    drift_novel_similarity: float = Field(
        default=0.50, ge=-1.0, le=1.0,
        description="An image whose best cosine to the training embeddings is below this counts as novel.")
    drift_refresh_seconds: float = Field(
        default=60.0, gt=0,
        description="How often the API recomputes the drift gauges of `/metrics` (in the background, only when "
                    "the window or the champion changed).")

    split_key: SecretStr | None = Field(
        default=None,
        description="Key of the split hash, used only when `sprout db upgrade` creates a database; default "
                    "random.")
    uploads_per_minute: int = Field(
        default=120, ge=1,
        description="Uploads per client address and minute (429 with `Retry-After` beyond).")
    predictions_per_minute: int = Field(
        default=600, ge=0,
        description="Images classified per client address and minute, `/predict` and `/v2` infer together (a "
                    "batch counts each image); 429 with `Retry-After` beyond; `0`: no limit.")
    max_pending_samples: int = Field(default=10_000, ge=1, description="Review-queue cap: uploads beyond it get 429 "
                                     "and production capture keeps nothing more.")
    review_undo_seconds: int = Field(
        default=300, ge=0,
        description="How long a reviewer may undo their own decision (approve, correct, reject), sending the sample "
                    "back to the queue; 0 turns undo off. Later, an admin can relabel it or send it back.")
    database_timeout_seconds: float = Field(
        default=5.0, gt=0,
        description="Bound on every PostgreSQL connect and round trip.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs login tokens; at least 32 characters in every mode, a random value required in "
                    "production (the API refuses to start without it; the CLI, the DAGs' tasks and the trainer "
                    "never get it). Default: generated into `SPROUT_HOME/secret_key` (48 random bytes, written "
                    "atomically). The embedded state directory is 0700, its database and key 0600.")
    access_token_minutes: int = Field(default=60, ge=1, description="Login token lifetime.")
    login_failures_per_user: int = Field(
        default=10, ge=1,
        description="Failed logins a minute for one user name from one client address; beyond, 429 with "
                    "`Retry-After` for that pair (a right password never counts).")
    login_failures_per_address: int = Field(
        default=30, ge=1,
        description="Failed logins a minute from one client address, any user names; beyond, 429.")
    login_failures_per_user_any_address: int = Field(
        default=100, ge=1,
        description="Failed logins a minute for one user name from all addresses together; beyond, 429 for that "
                    "name everywhere (stops guessing spread over many addresses; the price: such an attacker "
                    "can lock the name out at that rate).")
    rate_limit_storage: SecretStr | None = Field(
        default=None,
        description="`redis://:PASSWORD@HOST:6379/0` (or `rediss://`, `redis+unix://`): the Redis or Valkey "
                    "where every API process counts the rate limits together. Default: each API process's "
                    "memory.")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks whose `X-Forwarded-For` the API believes: the "
                    "ingress, the Streamlit server; `*` is refused. Empty: none.")
    model_poll_seconds: float = Field(
        default=10.0, gt=0,
        description="How often the API checks the registry for a new champion.")
    predict_threads: int | None = Field(
        default=None, ge=1, le=64,
        description="Predictions (`/predict`, `/v2/.../infer`) the API runs at once, one ONNX Runtime thread "
                    "each (default: one more than the CPUs the API may use); more wait their turn. The decodes "
                    "and model runs of uploads (`/samples`) share the same slots, so a burst of uploads cannot "
                    "oversubscribe the CPUs.")

    airflow_url: str | None = Field(
        default=None,
        description="Airflow API server, for `POST /admin/retrain` and approval events (`make up` sets it).")
    airflow_username: str | None = Field(
        default=None,
        description="The API's login at Airflow: `sprout`, a trigger user of Sprout's auth manager, not the "
                    "admin (`make up` sets it).")
    airflow_password: SecretStr | None = Field(
        default=None,
        description="The password of `SPROUT_AIRFLOW_USERNAME` (`make up` sets it).")
    retrain_dag_id: str = Field(default="sprout_retrain", description="The DAG `POST /admin/retrain` triggers.")
    # The same variables as the UI's sidebar links (streamlit_app/settings.py): the API links its retrain runs.
    airflow_public_url: str | None = Field(
        default=None,
        description="Airflow's web UI as a browser reaches it: `GET /admin/retrain` links each run there. "
                    "Empty: no link.")
    mlflow_public_url: str | None = Field(
        default=None,
        description="MLflow's web UI as a browser reaches it: `GET /admin/retrain` links each training run's "
                    "MLflow run. Empty: no link.")
    retrain_asset: str = Field(
        default="sprout_approved_samples",
        description="The Airflow asset approvals are announced on (API) and the retrain DAG is scheduled on.")

    # Outbound webhooks (model/runtime/webhooks.py): champion and rollout events, signed per Standard Webhooks.
    webhook_url: str | None = Field(
        default=None,
        description="An `http(s)://` URL that receives a signed JSON event (Standard Webhooks) when the champion "
                    "changes and when a rollout starts, promotes or aborts. Unset: no webhooks.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret of the webhooks, `whsec_` + base64 of 24 to 64 random bytes; required with "
                    "`SPROUT_WEBHOOK_URL`, no default.")
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Bound on each webhook delivery attempt (connect and response).")
    webhook_attempts: int = Field(
        default=3, ge=1, le=10,
        description="Delivery attempts of an event (same `webhook-id`), with backoff; only a connection error, "
                    "a timeout, a 5xx or a 429 is retried.")

    @model_validator(mode="after")
    def _check_webhook(self) -> Settings:
        from model.core.webhook_settings import check_webhook_settings

        check_webhook_settings(self.webhook_url, self.webhook_secret)
        return self

    crash_at: CrashPoint | None = Field(
        default=None,
        description="Tests only (refused in production): `move.after_copy` or `move.after_commit` kills the "
                    "process (SIGKILL) mid-move, for the crash-recovery test.")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            try:
                if item:
                    ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"SPROUT_TRUSTED_PROXIES: {item!r} is not an IP address or network") from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not RATE_LIMIT_STORES.match(value.get_secret_value()):
            raise ValueError("SPROUT_RATE_LIMIT_STORAGE must be memory://, redis://, rediss:// or redis+unix://")
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_database_url(self) -> str:
        """The database URL actually used (SQLite under ``home`` unless configured)."""
        return self.database_url or f"sqlite:///{(self.home / 'sprout.db').resolve()}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def resolved_mlflow_uri(self) -> str:
        """The MLflow tracking URI actually used (SQLite store under ``home`` unless configured)."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def max_image_pixels(self) -> int:
        """``max_image_megapixels`` as a pixel count, the ``max_pixels`` the image functions take."""
        return int(self.max_image_megapixels * 1_000_000)

    @property
    def objects_dir(self) -> Path:
        """Directory of the local object store (embedded mode)."""
        return (self.home / "objects").resolve()

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Artifact root of the embedded MLflow store."""
        return (self.home / "mlartifacts").resolve()

    @property
    def cache_dir(self) -> Path:
        """Local cache (exported backbone graphs, downloaded models)."""
        return (self.home / "cache").resolve()

    @property
    def backbone_graphs_dir(self) -> Path:
        """Where the backbones' exported ONNX graphs are cached (``backbone_graphs`` or home/cache/backbones)."""
        return (self.backbone_graphs or self.cache_dir / "backbones").resolve()

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        # SPROUT_SECRET_KEY is checked where it is used (model.core.security.signing_key, at the API's start): the
        # CLI, e.g. in the DAGs' task pods, runs without it.
        if self.s3_endpoint:
            secret = self.s3_secret_key.get_secret_value() if self.s3_secret_key else ""
            if not self.s3_access_key or not secret:
                raise ValueError("SPROUT_S3_ACCESS_KEY and SPROUT_S3_SECRET_KEY are required with S3")
            if self.env == "production" and secret.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("SPROUT_S3_SECRET_KEY is a placeholder; set a real secret")
        if self.env == "production" and self.crash_at:
            raise ValueError("SPROUT_CRASH_AT is for fault-injection tests; unset it in production")
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
