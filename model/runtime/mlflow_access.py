"""The API's own MLflow login: what serving needs on a basic-auth MLflow server, and nothing more.

The API reads the training runs (READ on the training experiment: their tags prove a version was trained by
Sprout, their metrics fill ``/models``) and the registered model (its versions, their ONNX files). Moving the
``champion`` alias is an admin's rollback through the API, so the registered model gets EDIT: with it the login
can set aliases and register versions, but neither delete anything nor create the Sprout run that every API
process requires of a version before serving it. The trainer keeps the admin login; MLflow's default permission
for other users is ``NO_PERMISSIONS`` wherever Sprout starts the server.
"""

from __future__ import annotations

import os

import httpx

from model.core.errors import ConfigurationError, RegistryUnavailableError
from model.core.settings import Settings
from model.serving.registry import Registry

EXPERIMENT_PERMISSION = "READ"
MODEL_PERMISSION = "EDIT"
# MLflow's basic-auth REST API (mlflow/server/auth/routes.py)
USERS_CREATE = "/api/2.0/mlflow/users/create"
USERS_GET = "/api/2.0/mlflow/users/get"
USERS_UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
PERMISSIONS_GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSIONS_REVOKE = "/api/3.0/mlflow/users/permissions/revoke"


def _admin_client(tracking_uri: str) -> httpx.Client:
    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not username or not password:
        raise ConfigurationError("Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to MLflow's admin login.")
    return httpx.Client(base_url=tracking_uri, auth=(username, password), timeout=10)


def _call(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    try:
        resp = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        raise RegistryUnavailableError(f"MLflow is unreachable: {exc}") from exc
    if resp.status_code in (401, 403):
        raise ConfigurationError(f"MLflow refused the admin login ({resp.status_code}): {resp.text[:200]}")
    return resp


def _grant(client: httpx.Client, username: str, kind: str, resource: str, permission: str) -> httpx.Response:
    """Give ``username`` exactly ``permission`` on a resource (a grant there before is replaced)."""
    target = {"username": username, "resource_type": kind, "resource_id": resource}
    resp = _call(client, "POST", PERMISSIONS_GRANT, json=target | {"permission": permission})
    if "RESOURCE_ALREADY_EXISTS" in resp.text:
        _call(client, "POST", PERMISSIONS_REVOKE, json=target)
        resp = _call(client, "POST", PERMISSIONS_GRANT, json=target | {"permission": permission})
    return resp


def grant_serving_access(settings: Settings, username: str, password: str) -> dict[str, str]:
    """Create (or reset the password of) MLflow user ``username`` with serving's permissions only."""
    if not (settings.mlflow_tracking_uri or "").startswith(("http://", "https://")):
        raise ConfigurationError("MLflow logins exist on an MLflow server only: set SPROUT_MLFLOW_TRACKING_URI.")
    registry = Registry.from_settings(settings)
    experiment_id = registry.experiment_id()  # created by the admin when missing, as the trainer would
    registry.ensure_registered_model()
    with _admin_client(registry.tracking_uri) as client:
        if _call(client, "GET", USERS_GET, params={"username": username}).status_code == 200:
            resp = _call(client, "PATCH", USERS_UPDATE_PASSWORD, json={"username": username, "password": password})
        else:
            resp = _call(client, "POST", USERS_CREATE, json={"username": username, "password": password})
        grants = {("experiment", experiment_id): EXPERIMENT_PERMISSION,
                  ("registered_model", registry.model_name): MODEL_PERMISSION}
        for (kind, resource), permission in grants.items():
            if resp.is_success:
                resp = _grant(client, username, kind, resource, permission)
        if not resp.is_success:
            raise ConfigurationError(f"MLflow refused to set up user {username}: {resp.text[:300]}")
    return {"username": username, "experiment": f"{registry.experiment} ({EXPERIMENT_PERMISSION})",
            "registered_model": f"{registry.model_name} ({MODEL_PERMISSION})"}
