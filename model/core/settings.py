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

PLACEHOLDER_SECRETS = {"changethis", "changeme", "secret", "password", "minioadmin"}
RATE_LIMIT_STORES = re.compile(r"^(memory|redis|rediss|redis\+unix)://")


class Settings(BaseSettings):
    """Sprout configuration. Defaults give the embedded mode: everything under ``home``."""

    model_config = SettingsConfigDict(
        env_prefix="SPROUT_", env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    env: Literal["development", "production"] = "development"
    home: Path = Field(default=Path(".sprout"), description="State directory of the embedded mode.")

    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in home.")

    s3_endpoint: str | None = Field(default=None, description="host:port of MinIO/S3; default local dir.")
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "sprout"
    s3_secure: bool = False
    s3_region: str | None = None
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket (isolates tenants/tests).")

    mlflow_tracking_uri: str | None = Field(default=None, description="Default: SQLite store in home.")
    mlflow_experiment: str = "sprout"
    model_name: str = "sprout-classifier"

    backbone: str = "efficientnet_lite0"
    backbone_graphs: Path | None = Field(
        default=None, description="Directory of the backbones' exported ONNX graphs (default: home/cache/backbones); "
                                  "named by the weights' digest, so homes and workers may share one.")
    dinov2_model: str = Field(default="facebook/dinov2-small", description="Hub id or local dir.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=32, ge=1)
    seed: int = 0

    candidate_backbones: str = Field(
        default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2",
        description="Backbones a run trains a candidate for (comma-separated); the best CV log loss wins.")
    gate_min_accuracy: float = Field(default=0.90, ge=0.0, le=1.0)
    gate_max_regression: float = Field(default=0.02, ge=0.0, le=1.0,
                                       description="Largest tolerated drop vs the champion (accuracy, class recall).")
    gate_alpha: float = Field(default=0.05, gt=0.0, lt=1.0,
                              description="One-sided McNemar level for 'significantly worse than the champion'.")
    gate_min_class_support: int = Field(default=10, ge=1,
                                        description="Test images a class needs before its recall is compared.")
    min_new_samples: int = Field(default=10, ge=1)
    seed_dataset: Path = Path("../shared/datasets/dandelion-grass")
    max_upload_mb: float = Field(default=10, gt=0)
    max_image_megapixels: float = Field(
        default=24, gt=0, le=50,
        description="Largest image accepted for decoding, in megapixels (pixel-bomb guard; 50 at most).",
    )

    near_dup_threshold: float = Field(
        default=0.70, ge=-1.0, le=1.0,
        description="Cosine similarity of embeddings from which an upload may be a near-duplicate "
                    "(with the pHash distance below; bench/near_duplicates.py measures the pair).")
    near_dup_max_hash_distance: int = Field(
        default=18, ge=0, le=64, description="Largest perceptual-hash distance (bits of 64) of a near-duplicate.")

    capture_below: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="Opt-in production capture (a privacy choice): keep /predict images whose calibrated confidence "
                    "is below this as pending samples (source=capture). Unset: off.")
    capture_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0,
                                       description="Also capture this random share of all predictions (0: none).")
    capture_per_hour: int = Field(default=100, ge=0, description="Captures per hour at most (all workers).")
    capture_per_day: int = Field(default=1000, ge=0, description="Captures per day at most (all workers).")

    drift_window: int = Field(default=500, ge=10, le=100_000,
                              description="Recent predictions kept for the drift report (the writer prunes the rest).")
    drift_buffer: int = Field(default=1000, ge=1,
                              description="Predictions buffered in memory before a flush; more are dropped, counted.")
    drift_flush_seconds: float = Field(default=2.0, gt=0, description="How often buffered predictions are written.")
    drift_min_predictions: int = Field(default=30, ge=2, description="Predictions needed before drift is declared.")
    drift_method: Literal["mmd", "auc"] = Field(
        default="mmd", description="Drift score: RBF-kernel MMD with a permutation threshold, or a domain "
                                   "classifier's cross-validated AUC (bench/drift.py measures both).")
    drift_alpha: float = Field(default=0.01, gt=0.0, lt=0.5,
                               description="Level of the drift test (the threshold is its 1 - alpha quantile).")
    drift_permutations: int = Field(default=200, ge=20, le=10_000, description="Permutations of the MMD test.")
    drift_novel_similarity: float = Field(
        default=0.50, ge=-1.0, le=1.0,
        description="An image whose best cosine to the training embeddings is below this is novel.")
    drift_refresh_seconds: float = Field(default=60.0, gt=0, description="How often /metrics' drift gauges refresh.")

    split_key: SecretStr | None = Field(
        default=None, description="Key of the split hash for a new database (`sprout db upgrade`); default random.")
    uploads_per_minute: int = Field(default=120, ge=1, description="Uploads per client address and minute (429).")
    predictions_per_minute: int = Field(
        default=600, ge=0, description="Images classified per client address and minute, /predict and /v2 infer "
                                       "together, a batch counting its images (429); 0: no limit.")
    max_pending_samples: int = Field(default=10_000, ge=1, description="Cap on the review queue (429 when full).")
    database_timeout_seconds: float = Field(default=5.0, gt=0, description="Bound on every database round trip.")
    secret_key: SecretStr | None = Field(
        default=None, description="Signs the API's login tokens; generated in home if unset (required in production).")
    access_token_minutes: int = Field(default=60, ge=1)
    login_failures_per_user: int = Field(
        default=10, ge=1, description="Failed logins a minute for one user name from one client address (then 429).")
    login_failures_per_address: int = Field(
        default=30, ge=1, description="Failed logins a minute from one client address, any user names (then 429).")
    login_failures_per_user_any_address: int = Field(
        default=100, ge=1, description="Failed logins a minute for one user name from all addresses together (then "
                                       "429 for that name everywhere: guesses spread over many addresses stop here).")
    rate_limit_storage: SecretStr | None = Field(
        default=None, description="Where rate limits count: each API process's memory (default), or a Redis/Valkey "
                                  "every process shares (redis://:PASSWORD@HOST:6379/0, rediss://...).")
    trusted_proxies: str = Field(
        default="", description="Comma-separated addresses or networks of the proxies (ingress, the Streamlit "
                                "server) whose X-Forwarded-For the API believes; empty: none.")
    model_poll_seconds: float = Field(default=10.0, gt=0)
    predict_threads: int | None = Field(
        default=None, ge=1, le=64,
        description="Predictions the API runs at once, one ONNX Runtime thread each (default: one more than the "
                    "CPUs it may use); more wait their turn.")

    airflow_url: str | None = Field(default=None, description="Airflow API server, for POST /admin/retrain.")
    airflow_username: str | None = None
    airflow_password: SecretStr | None = None
    retrain_dag_id: str = "sprout_retrain"
    retrain_asset: str = Field(default="sprout_approved_samples",
                               description="Airflow asset the retrain DAG is scheduled on (besides its timetable).")

    crash_at: CrashPoint | None = Field(
        default=None, description="Tests only: kill the process (SIGKILL) at this point (refused in production).")

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

    @property
    def candidate_backbone_names(self) -> list[str]:
        names = [name.strip() for name in self.candidate_backbones.split(",") if name.strip()]
        return names or [self.backbone]

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
