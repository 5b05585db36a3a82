"""The MLflow server's artifact-location rule (model/runtime/mlflow_app.py): inside the destination or nothing."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from model.runtime.mlflow_app import ADMIN_ONLY_PATHS, _basic_auth_username, artifact_location_allowed


@pytest.mark.parametrize("location", [None, "", "mlflow-artifacts:/1", "{root}", "{root}/7", "file://{root}/7/a",
                                      "file://localhost{root}/x", "{root}/a/../b"])
def test_locations_inside_a_local_destination_are_allowed(tmp_path: Path, location: str | None) -> None:
    root = tmp_path / "mlartifacts"
    assert artifact_location_allowed(location and location.format(root=root), str(root))


@pytest.mark.parametrize("location", ["{root}/../dags", "file://{root}/../../x", "file:///etc", "dags", "{root}x",
                                      "file://evil.example{root}", "s3://bucket/x", "{link}/x"])
def test_locations_outside_a_local_destination_are_refused(tmp_path: Path, location: str) -> None:
    root = tmp_path / "mlartifacts"
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    assert not artifact_location_allowed(location.format(root=root, link=tmp_path / "link"), str(root))


def test_a_symlink_inside_the_destination_that_leaves_it_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "mlartifacts"
    root.mkdir()
    (root / "out").symlink_to(tmp_path / "dags")
    assert not artifact_location_allowed(f"{root}/out/x", str(root))


@pytest.mark.parametrize(("location", "allowed"), [
    ("s3://mlflow/mlartifacts/3", True), ("s3://mlflow/mlartifacts", True), ("s3://mlflow/mlartifactsx", False),
    ("s3://mlflow/other", False), ("s3://mlflow/mlartifacts/../x", False), ("s3://other/mlartifacts", False),
    ("gs://mlflow/mlartifacts", False), ("file:///tmp/x", False)])
def test_an_object_store_destination_keeps_experiments_under_its_prefix(location: str, allowed: bool) -> None:
    assert artifact_location_allowed(location, "s3://mlflow/mlartifacts") is allowed


@pytest.mark.parametrize(("path", "admin_only"), [
    ("/ajax-api/3.0/mlflow/demo/generate", True), ("/api/3.0/mlflow/gateway/secrets/create", True),
    ("//api/3.0/mlflow/Gateway/secrets/create", True), ("/gateway/ep/mlflow/invocations", True),
    ("/ajax-api/3.0/mlflow/assistant/config", True), ("/ajax-api/3.0/jobs/search", True),
    ("/api/2.0/mlflow/registered-models/get", False), ("/api/2.0/mlflow-artifacts/artifacts/1/x", False),
    ("/api/2.0/mlflow/runs/get", False)])
def test_mlflows_other_features_are_the_admins(path: str, admin_only: bool) -> None:
    assert bool(ADMIN_ONLY_PATHS.match(path)) is admin_only


def test_the_user_name_of_a_basic_login() -> None:
    assert _basic_auth_username("Basic " + base64.b64encode(b"sprout-api:p:w").decode()) == "sprout-api"
    assert _basic_auth_username("Bearer abc") is None and _basic_auth_username("Basic !!") is None
    assert _basic_auth_username(None) is None
