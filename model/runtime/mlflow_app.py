"""MLflow's basic-auth app with one more rule: an experiment keeps its artifacts where the server keeps them.

``mlflow server --app-name sprout-basic-auth`` (the ``mlflow.app`` entry point in pyproject.toml) is MLflow's own
basic-auth app (every call but ``/health`` needs a login) plus a check of ``experiments/create``: an
``artifact_location`` must be empty (the server's default), a proxied ``mlflow-artifacts:`` URI, or lie inside the
server's ``--artifacts-destination``. Otherwise any login could point an experiment at a writable directory of the
server's account (a DAGs folder, say) and have the server write files there. The check runs after MLflow's own:
an anonymous request still gets 401.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CREATE_EXPERIMENT_PATHS = frozenset({"/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create"})
# Set by `mlflow server` from --artifacts-destination for its workers (mlflow.server.ARTIFACTS_DESTINATION_ENV_VAR).
DESTINATION_ENV = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
LOCAL_SCHEMES = frozenset({"", "file"})


def _local_path(uri: str) -> Path | None:
    """The absolute, resolved path of a local URI or plain path; None for another scheme or host."""
    parsed = urlparse(uri)
    if parsed.scheme not in LOCAL_SCHEMES or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path) if parsed.scheme else uri).resolve()


def artifact_location_allowed(location: str | None, destination: str) -> bool:
    """Whether an experiment may keep its artifacts at ``location``, given the server's artifact destination."""
    if not location:
        return True
    if urlparse(location).scheme == "mlflow-artifacts":  # proxied: MLflow keeps it under the destination
        return True
    path, root = _local_path(location), _local_path(destination)
    if path is not None or root is not None:
        return path is not None and root is not None and (path == root or root in path.parents)
    wanted, allowed = urlparse(location), urlparse(destination)
    inside = posixpath.normpath("/" + wanted.path).rstrip("/") + "/"
    return (wanted.scheme, wanted.netloc) == (allowed.scheme, allowed.netloc) and \
        inside.startswith(posixpath.normpath("/" + allowed.path).rstrip("/") + "/")


def create_app() -> Any:
    """MLflow's basic-auth app, refusing experiments whose artifacts would live outside the destination."""
    from flask import jsonify, request
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)  # registers MLflow's login check first: it runs first

    @flask_app.before_request
    def _refuse_outside_artifact_location() -> Any:
        if request.method != "POST" or request.path not in CREATE_EXPERIMENT_PATHS:
            return None
        location = (request.get_json(silent=True) or {}).get("artifact_location")
        destination = os.environ.get(DESTINATION_ENV, "mlartifacts")
        if isinstance(location, str | None) and artifact_location_allowed(location, destination):
            return None
        message = f"artifact_location must lie inside the server's artifact destination ({destination})"
        return jsonify(error_code="INVALID_PARAMETER_VALUE", message=message), 400

    return served
