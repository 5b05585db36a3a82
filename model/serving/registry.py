"""MLflow model registry: runs, the ``sprout-classifier`` registered model, its ``champion`` alias and, during a
rollout, its ``challenger`` alias."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model.core.errors import NoChampionError, NotFoundError, RegistryUnavailableError
from model.core.settings import Settings
from model.data.images import DEFAULT_MAX_PIXELS
from model.serving.predictor import Predictor

log = logging.getLogger(__name__)

# MLflow's HTTP client retries for minutes by default; a server that answers a user should fail fast
# (503) instead. MLflow reads these only from the environment; ``Registry.from_settings`` sets them
# (never an import). Explicit MLFLOW_* settings in the environment still win. MLflow's usage telemetry (sent to
# its makers over the internet, and flushed at exit: about a second per CLI call offline) is off unless the
# operator turns it on (MLFLOW_DISABLE_TELEMETRY=false).
MLFLOW_CLIENT_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                          "MLFLOW_HTTP_REQUEST_TIMEOUT": "8", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                          "MLFLOW_DISABLE_TELEMETRY": "true"}

CHAMPION = "champion"
CHALLENGER = "challenger"  # a version judged on live traffic beside the champion (shadow or canary)
MODEL_ARTIFACT = "model"


MISSING_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


def _raise_unless_missing(exc: Exception) -> None:
    """'Not found' answers mean no such model/version; anything else means the registry is unreachable."""
    if getattr(exc, "error_code", None) in MISSING_CODES:
        return
    raise RegistryUnavailableError(f"The model registry is unavailable: {str(exc)[:200]}") from exc


@contextlib.contextmanager
def _mlflow_errors() -> Iterator[None]:
    """MLflow and HTTP failures become RegistryUnavailableError, so callers never see MLflow's exceptions."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    try:
        yield
    except (MlflowException, RequestException, OSError) as exc:
        raise RegistryUnavailableError(f"The model registry is unavailable: {str(exc)[:200]}") from exc


@contextlib.contextmanager
def _requests_errors() -> Iterator[None]:
    """HTTP failures below MLflow (connection refused, timeouts) become RegistryUnavailableError."""
    from requests.exceptions import RequestException

    try:
        yield
    except RequestException as exc:
        raise RegistryUnavailableError(f"The model registry is unreachable: {str(exc)[:200]}") from exc


class RunLog:
    """The active MLflow run of a training run: what the pipeline logs, without importing MLflow itself."""

    def __init__(self, run_id: str, *, resumed: bool = False) -> None:
        self.run_id = run_id
        self.resumed = resumed  # an existing run, picked up by its key (see Registry.start_run)

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        with _mlflow_errors():
            mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import mlflow

        with _mlflow_errors():
            mlflow.log_metrics(metrics)

    def log_dict(self, data: dict[str, Any], name: str) -> None:
        import mlflow

        with _mlflow_errors():
            mlflow.log_dict(data, name)

    def log_table(self, columns: dict[str, list[Any]], name: str) -> None:
        """A small table (one list per column), shown by MLflow's artifact viewer."""
        import mlflow

        with _mlflow_errors():
            mlflow.log_table(data=columns, artifact_file=name)

    def log_image(self, image: Any, name: str) -> None:
        import mlflow

        with _mlflow_errors():
            mlflow.log_image(image, name)

    def set_tags(self, tags: dict[str, str]) -> None:
        import mlflow

        with _mlflow_errors():
            mlflow.set_tags(tags)

    def log_onnx(self, onnx_model: Any) -> str:
        """Log the fused ONNX model (an ``onnx.ModelProto``) in this run as Sprout's MLflow pyfunc
        (``model.serving.pyfunc``); returns its model URI (not registered).

        The model's ``artifacts/model.onnx`` is ``onnx_model.SerializeToString()`` byte for byte: the file
        training hashes, the API downloads (``model_file``) and verifies.
        """
        from model.serving.pyfunc import log_pyfunc

        metadata = {p.key: p.value for p in onnx_model.metadata_props if p.key.startswith("sprout.")}
        with _mlflow_errors():
            return log_pyfunc(onnx_model.SerializeToString(), name=MODEL_ARTIFACT, metadata=metadata)


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version."""

    version: str
    run_id: str | None
    aliases: list[str]
    created_at_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Registry:
    """Thin wrapper over MLflow for Sprout's needs; works with a local SQLite store or a server."""

    def __init__(self, *, tracking_uri: str, experiment: str, model_name: str,
                 artifact_location: str | None, cache_dir: Path) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.model_name = model_name
        self.artifact_location = artifact_location
        self.cache_dir = cache_dir
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        for name, value in MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)
        local = settings.mlflow_tracking_uri is None
        if local:
            settings.home.mkdir(parents=True, exist_ok=True)
        return cls(
            tracking_uri=settings.resolved_mlflow_uri,
            experiment=settings.mlflow_experiment,
            model_name=settings.model_name,
            artifact_location=settings.mlflow_artifacts_dir.as_uri() if local else None,
            cache_dir=settings.cache_dir / "models",
        )

    def experiment_id(self, name: str | None = None) -> str:
        """The id of the experiment ``name`` (default: the training runs'), created when missing."""
        name = name or self.experiment
        with _mlflow_errors():
            exp = self.client.get_experiment_by_name(name)
            if exp is not None:
                return str(exp.experiment_id)
            return str(self.client.create_experiment(name, artifact_location=self.artifact_location))

    @contextlib.contextmanager
    def start_run(self, run_name: str, *, experiment: str | None = None,
                  key: tuple[str, str] | None = None) -> Iterator[RunLog]:
        """An active MLflow run (fluent API bound to this registry's tracking URI) in ``experiment`` (default:
        the training runs'). With ``key`` (a tag and its value) the run carrying it is resumed, so a retried
        step logs into the same run; a new run gets the tag."""
        import mlflow

        self._bind()
        experiment_id = self.experiment_id(experiment)
        resumed = None
        if key is not None:
            with _mlflow_errors():
                found = self.client.search_runs([experiment_id], filter_string=f"tags.`{key[0]}` = '{key[1]}'",
                                                max_results=1)
            resumed = found[0].info.run_id if found else None
        with _mlflow_errors():
            active = mlflow.start_run(run_id=resumed) if resumed else mlflow.start_run(
                experiment_id=experiment_id, run_name=run_name, tags=dict([key]) if key else None)
        with active as run:
            yield RunLog(run.info.run_id, resumed=resumed is not None)

    def _bind(self) -> None:
        """Point MLflow's fluent API (runs, downloads) at this registry."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def ensure_registered_model(self) -> None:
        """Create the classifier's registered model unless it exists."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            _raise_unless_missing(exc)
            with _mlflow_errors():
                self.client.create_registered_model(self.model_name)

    def register(self, model_uri: str, run_id: str) -> str:
        """Register a logged model as a new version of the classifier; returns the version."""
        import mlflow

        self.ensure_registered_model()
        for existing in self.versions():
            if existing.run_id == run_id:  # a retried promotion never registers twice
                return existing.version
        self._bind()
        with _mlflow_errors():
            mv = mlflow.register_model(model_uri, self.model_name)
        return str(mv.version)

    def set_champion(self, version: str) -> None:
        self.version_info(version)
        with _mlflow_errors():
            self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))

    def champion(self) -> VersionInfo | None:
        return self.aliased(CHAMPION)

    def challenger(self) -> VersionInfo | None:
        return self.aliased(CHALLENGER)

    def aliased(self, alias: str) -> VersionInfo | None:
        """The version ``alias`` points at, or None when it points nowhere."""
        from mlflow.exceptions import MlflowException

        try:
            with _requests_errors():
                mv = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            _raise_unless_missing(exc)
            return None
        return self._info(mv)

    def set_challenger(self, version: str) -> None:
        self.version_info(version)
        with _mlflow_errors():
            self.client.set_registered_model_alias(self.model_name, CHALLENGER, str(version))

    def clear_challenger(self) -> None:
        """Remove the ``challenger`` alias (nothing to do when it points nowhere)."""
        from mlflow.exceptions import MlflowException

        try:
            with _requests_errors():
                self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        except MlflowException as exc:
            _raise_unless_missing(exc)

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        """Set tags on a registered version (e.g. its rollout's live comparison, shown in MLflow's UI)."""
        with _mlflow_errors():
            for key, value in tags.items():
                self.client.set_model_version_tag(self.model_name, str(version), key, value[:5000])

    def version_info(self, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            with _requests_errors():
                return self._info(self.client.get_model_version(self.model_name, str(version)))
        except MlflowException as exc:
            _raise_unless_missing(exc)
            raise NotFoundError(f"Model version {version} not found.") from None

    def versions(self) -> list[VersionInfo]:
        from mlflow.exceptions import MlflowException

        try:
            with _requests_errors():
                found = self.client.search_model_versions(f"name='{self.model_name}'")
        except MlflowException as exc:
            _raise_unless_missing(exc)
            return []
        return sorted((self._info(mv) for mv in found), key=lambda v: int(v.version))

    @staticmethod
    def _info(mv: Any) -> VersionInfo:
        return VersionInfo(version=str(mv.version), run_id=mv.run_id, aliases=list(mv.aliases or []),
                           created_at_ms=int(mv.creation_timestamp or 0))

    def resolve(self, version: str | None) -> VersionInfo:
        """``None`` or ``"champion"`` → the champion; otherwise that version."""
        if version in (None, CHAMPION):
            champ = self.champion()
            if champ is None:
                raise NoChampionError("No model has been promoted yet: train one with `sprout train`.")
            return champ
        return self.version_info(str(version))

    def model_file(self, version: str | None = None) -> tuple[VersionInfo, Path]:
        """The ONNX file of a version (downloaded once into the cache)."""
        import mlflow.artifacts

        info = self.resolve(version)
        tag = hashlib.sha256(f"{self.tracking_uri}|{info.version}|{info.run_id}".encode()).hexdigest()[:12]
        target = self.cache_dir / f"v{info.version}-{tag}" / "model.onnx"
        if not target.exists():
            self._bind()
            with tempfile.TemporaryDirectory() as tmp, _mlflow_errors():
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{self.model_name}/{info.version}", dst_path=tmp,
                    tracking_uri=self.tracking_uri))
                found = next(local.rglob("*.onnx"))
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(found, target.with_suffix(".tmp"))
                target.with_suffix(".tmp").replace(target)
        return info, target

    def load_predictor(self, version: str | None = None, threads: int | None = None,
                       max_pixels: int = DEFAULT_MAX_PIXELS) -> Predictor:
        """A Predictor for the champion (default) or a given version."""
        info, path = self.model_file(version)
        return Predictor.load(path, version=info.version, threads=threads, max_pixels=max_pixels)
