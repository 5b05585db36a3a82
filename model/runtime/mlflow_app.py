"""MLflow's basic-auth app with two more rules on ``experiments/create``: only the admin creates experiments,
and an experiment keeps its artifacts where the server keeps them.

``mlflow server --app-name sprout-basic-auth`` (the ``mlflow.app`` entry point in pyproject.toml) is MLflow's own
basic-auth app (every call but ``/health`` needs a login). Sprout's other logins (the API's) never create
experiments, and an experiment one creates is theirs to fill with runs and artifacts. The admin's
``artifact_location`` must be empty (the server's default), a proxied ``mlflow-artifacts:`` URI, or lie inside the
server's ``--artifacts-destination``: otherwise a login could point an experiment at a writable directory of the
server's account (a DAGs folder, say) and upload files there. The request is read with MLflow's own parser, so
every spelling MLflow accepts (``artifactLocation`` too) is checked. The checks run after MLflow's own: an
anonymous request still gets 401.
"""

from __future__ import annotations

import base64
import binascii
import os
import posixpath
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CREATE_EXPERIMENT_PATHS = frozenset({"/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create"})
# Set by `mlflow server` from --artifacts-destination for its workers (mlflow.server.ARTIFACTS_DESTINATION_ENV_VAR).
DESTINATION_ENV = "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
LOCAL_SCHEMES = frozenset({"", "file"})
# MLflow's features beside tracking and the registry, some of which create experiments or store provider secrets:
# demo data, the AI gateway, the assistant, MCP servers, background jobs. Sprout uses none; only the admin may.
ADMIN_ONLY_PATHS = re.compile(r"^/+(?:(?:ajax-)?api/[0-9.]+/mlflow/(?:demo|gateway|assistant|mcp)|gateway/"
                              r"|ajax-api/[0-9.]+/jobs)", re.IGNORECASE)


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


def _create_experiment_paths() -> frozenset[str]:
    """Every route MLflow serves CreateExperiment on (REST and ajax, each API version it exists in)."""
    from mlflow.protos.service_pb2 import CreateExperiment, MlflowService
    from mlflow.server.handlers import get_service_endpoints

    return frozenset(path for path, request_class, _ in get_service_endpoints(MlflowService, lambda cls: cls)
                     if request_class is CreateExperiment)


def _requested_artifact_location() -> str | None:
    """The ``artifact_location`` MLflow itself will read from this request (either JSON spelling of the field,
    a double-encoded body...): parsed by MLflow's own parser; None where MLflow will refuse the request anyway."""
    from mlflow.protos.service_pb2 import CreateExperiment
    from mlflow.server.handlers import _get_request_message

    try:
        return str(_get_request_message(CreateExperiment()).artifact_location)
    except Exception:  # MLflow's handler answers the same malformed request with its own 400
        return None


def _basic_auth_username(header: str | None) -> str | None:
    """The user name of a ``Basic`` Authorization header (its password is MLflow's to check), else None."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0] or None
    except (binascii.Error, UnicodeDecodeError):
        return None


def create_app() -> Any:
    """MLflow's basic-auth app where only the admin creates experiments, and never one whose artifacts would lie
    outside the artifact destination."""
    from flask import jsonify, request
    from mlflow.server import app as flask_app
    from mlflow.server.auth import authenticate_request, store
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)  # registers MLflow's login check first: it runs first
    create_paths = _create_experiment_paths()

    def refuse(status: int, code: str, message: str) -> Any:
        return jsonify(error_code=code, message=message), status

    def is_admin(username: str | None) -> bool:
        try:
            return username is not None and bool(store.get_user(username).is_admin)
        except Exception:  # no such user: MLflow answers its own 401
            return False

    admin_only = "Only MLflow's admin may use this part of MLflow on Sprout's server."

    @flask_app.before_request
    def _guard_experiment_creation() -> Any:
        if request.url_rule is None or request.url_rule.rule not in create_paths:
            return None
        if not is_admin(getattr(authenticate_request(), "username", None)):  # MLflow's login check ran first
            return refuse(403, "PERMISSION_DENIED", "Only MLflow's admin creates experiments on Sprout's server.")
        location = _requested_artifact_location()
        destination = os.environ.get(DESTINATION_ENV, "mlartifacts")
        if location is None or artifact_location_allowed(location, destination):
            return None
        return refuse(400, "INVALID_PARAMETER_VALUE",
                      f"artifact_location must lie inside the server's artifact destination ({destination})")

    if not callable(getattr(served, "wsgi_app", None)):  # uvicorn (MLflow's default): one guard before every route
        return _asgi_admin_only(served, is_admin, admin_only)

    @flask_app.before_request
    def _admin_only_features_flask() -> Any:  # gunicorn/waitress: Flask serves every route
        if ADMIN_ONLY_PATHS.match(request.path) and not is_admin(
                _basic_auth_username(request.headers.get("Authorization"))):
            return refuse(403, "PERMISSION_DENIED", admin_only)
        return None

    return served


def _asgi_admin_only(app: Any, is_admin: Any, message: str) -> Any:
    """ASGI wrapper: the admin-only paths answer any other login 403 (plain ASGI: the domain imports no web
    framework of its own)."""
    import json

    body = json.dumps({"error_code": "PERMISSION_DENIED", "message": message}).encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and ADMIN_ONLY_PATHS.match(scope.get("path", "")):
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            if not is_admin(_basic_auth_username(header)):
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded
