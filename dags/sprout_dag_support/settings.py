"""The Sprout DAGs' settings, from ``SPROUT_*`` environment variables read when Airflow parses the DAG files
(no Variables, DB or network).

Imports nothing of Airflow at module level, so the tests can compare these defaults with the application's
(``model/core/settings.py``) in Sprout's own virtualenv.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Every DAG starts here (catchup is off): an aware datetime, which Airflow keeps in UTC.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = ["sprout"]
# The backbones a retrain tries, one mapped task each (the CLI's SPROUT_CANDIDATE_BACKBONES, same default).
DEFAULT_CANDIDATES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

DEFAULT_GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

# The keys of Sprout's Secret (SPROUT_K8S_ENV_SECRET) that every task pod gets, each as an env variable of
# the same name (secretKeyRef); a trailing `?` marks a key the Secret may lack (optional). The `sprout` CLI
# of the tasks (import, status, retrain-check, train-candidate, gate, promote, batch-plan, predict,
# batch-report) needs its database, its bucket's key, and MLflow's login (MLflow's client reads
# MLFLOW_TRACKING_*). Not given: SPROUT_SECRET_KEY (it signs the API's tokens; no CLI task reads it), the
# Airflow and reviewer passwords, and anything else the Secret holds. The Helm chart sets the list
# (SPROUT_K8S_SECRET_KEYS of its airflow-env ConfigMap, the MLflow login required when it runs MLflow); this is
# the default when that is unset.
DEFAULT_SECRET_KEYS = ("SPROUT_DATABASE_URL", "SPROUT_S3_ACCESS_KEY", "SPROUT_S3_SECRET_KEY",
                       "MLFLOW_TRACKING_USERNAME?", "MLFLOW_TRACKING_PASSWORD?")
_SECRET_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an env variable's name that is a Secret key too


def _env(name: str, default: Any = None, factory: Any = None, description: str | None = None) -> Any:
    """A field read from the environment variable ``name`` (``description``: its line on the configuration page)."""
    if factory is not None:
        return Field(default_factory=factory, validation_alias=name, description=description)
    return Field(default, validation_alias=name, description=description)


def _words(value: str) -> tuple[str, ...]:
    """The items of a list setting written with commas and/or whitespace."""
    return tuple(w for w in re.split(r"[,\s]+", value) if w)


class DagSettings(BaseSettings):
    """The DAGs' configuration, from ``SPROUT_*`` environment variables (pydantic-settings, like Sprout's own).

    JSON values (``SPROUT_K8S_GPU_NODE_SELECTOR``, ``SPROUT_K8S_GPU_TOLERATIONS``) are parsed by pydantic-settings.
    """

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    runner: Literal["local", "kubernetes"] = _env("SPROUT_TASK_RUNNER", "local",
                                                  description="DAG tasks: `local` subprocess or `kubernetes` pods "
                                                               "(`SPROUT_TRAINER_IMAGE`, `SPROUT_K8S_*`).")
    cli: str = _env("SPROUT_CLI", "sprout",
                    description="The CLI the local DAG tasks run.")
    retrain_schedule: str = _env("SPROUT_RETRAIN_SCHEDULE", "@weekly",
                                 description="The retrain DAG's schedule (cron or preset).")
    retrain_asset: str = _env("SPROUT_RETRAIN_ASSET", "sprout_approved_samples",
                              description="The Airflow asset the retrain DAG is scheduled on (the API's "
                                           "`SPROUT_RETRAIN_ASSET`).")
    rollout_schedule: str = _env("SPROUT_ROLLOUT_SCHEDULE", "*/5 * * * *",
                                 description="How often the rollout DAG judges the open rollout (cron or preset).")
    gc_schedule: str = _env("SPROUT_GC_SCHEDULE", "17 3 * * *",
                            description="When the gc DAG runs `sprout gc --apply`, the retention rules (cron or "
                                        "preset; daily at 03:17 UTC).")
    retries: int = _env("SPROUT_TASK_RETRIES", 2,
                        description="Retries of a task.")
    retry_delay_seconds: float = _env("SPROUT_TASK_RETRY_DELAY_SECONDS", 60.0,
                                      description="First delay before a retry (exponential backoff).")
    max_retry_delay_seconds: float = _env("SPROUT_TASK_MAX_RETRY_DELAY_SECONDS", 1800.0,
                                          description="Longest delay before a retry.")
    train_timeout_minutes: float = _env("SPROUT_TRAIN_TIMEOUT_MINUTES", 120.0,
                                        description="Time limit of the training tasks.")
    task_timeout_minutes: float = _env("SPROUT_TASK_TIMEOUT_MINUTES", 30.0,
                                       description="Time limit of every other task.")
    seed_dataset: str = _env("SPROUT_SEED_DATASET", "../shared/datasets/dandelion-grass",
                             description="What `sprout_bootstrap` imports when its `source` param is empty.")
    image: str = _env("SPROUT_TRAINER_IMAGE", "sprout:latest",
                      description="The Sprout trainer image of the task pods (`kubernetes` runner).")
    image_pull_policy: str = _env("SPROUT_K8S_IMAGE_PULL_POLICY", "IfNotPresent",
                                  description="The task pods' image pull policy.")
    namespace: str = _env("SPROUT_K8S_NAMESPACE", "sprout",
                          description="The namespace of the task pods.")
    service_account: str | None = _env("SPROUT_K8S_SERVICE_ACCOUNT",
                                       description="The task pods' service account.")
    env_configmap: str | None = _env("SPROUT_K8S_ENV_CONFIGMAP",
                                     description="The ConfigMap whose every key the task pods get as environment "
                                                  "(Sprout's settings).")
    env_secret: str | None = _env("SPROUT_K8S_ENV_SECRET",
                                  description="The Secret the task pods take the keys `SPROUT_K8S_SECRET_KEYS` names "
                                               "from.")
    secret_keys: Annotated[tuple[str, ...], NoDecode] = _env("SPROUT_K8S_SECRET_KEYS", DEFAULT_SECRET_KEYS,
                                                             description="The Secret's keys every task pod gets "
                                                                          "(`secretKeyRef`; a trailing `?`: optional).")
    candidate_backbones: Annotated[tuple[str, ...], NoDecode] = _env("SPROUT_CANDIDATE_BACKBONES",
                                                                     DEFAULT_CANDIDATES,
                                                                     description="The backbones a retrain tries, "
                                                                                 "one mapped task each (the CLI's "
                                                                                 "setting).")
    gpu_node_selector: dict[str, str] = _env("SPROUT_K8S_GPU_NODE_SELECTOR", factory=dict,
                                             description="JSON: the node selector of the training pod "
                                                          "(`nvidia.com/gpu: 1`).")
    gpu_tolerations: list[dict[str, Any]] = _env("SPROUT_K8S_GPU_TOLERATIONS",
                                                 factory=lambda: list(DEFAULT_GPU_TOLERATIONS),
                                                 description="JSON: the training pod's tolerations.")

    @field_validator("runner", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("candidate_backbones", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return (_words(value) or DEFAULT_CANDIDATES) if isinstance(value, str) else value

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """``KEY,KEY?,...`` (commas and/or whitespace); each a valid name, none twice."""
        if not isinstance(value, str):
            return value
        keys = _words(value)
        for key in keys:
            if not _SECRET_KEY_NAME.fullmatch(key.removesuffix("?")):
                raise ValueError(f"SPROUT_K8S_SECRET_KEYS: {key!r} is not a variable name (optional: NAME?)")
        names = [k.removesuffix("?") for k in keys]
        if len(set(names)) != len(names):
            raise ValueError(f"SPROUT_K8S_SECRET_KEYS names a key twice: {value!r}")
        return keys

    @property
    def secret_env(self) -> list[tuple[str, bool]]:
        """``(key, optional)`` of each key of ``env_secret`` the task pods get; none without a Secret."""
        if not self.env_secret:
            return []
        return [(key.removesuffix("?"), key.endswith("?")) for key in self.secret_keys]

    @property
    def retry_delay(self) -> timedelta:
        return timedelta(seconds=self.retry_delay_seconds)

    @property
    def max_retry_delay(self) -> timedelta:
        return timedelta(seconds=self.max_retry_delay_seconds)

    @property
    def train_timeout(self) -> timedelta:
        return timedelta(minutes=self.train_timeout_minutes)

    @property
    def task_timeout(self) -> timedelta:
        return timedelta(minutes=self.task_timeout_minutes)

    def retrain_timetable(self) -> Any:
        """The retrain DAG's schedule: its timetable (``retrain_schedule``, UTC) OR an event on the asset the
        API announces approvals on (``retrain_asset``, the API's SPROUT_RETRAIN_ASSET)."""
        from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

        return AssetOrTimeSchedule(timetable=CronTriggerTimetable(self.retrain_schedule, timezone="UTC"),
                                   assets=[Asset(self.retrain_asset)])

    def default_args(self) -> dict[str, Any]:
        """Retries with exponential backoff for every task (a final CLI error fails at once)."""
        return {
            "owner": "sprout",
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": self.max_retry_delay,
            "execution_timeout": self.task_timeout,
        }


SETTINGS = DagSettings()
