"""Fixtures of several top-level test folders (a folder's own live in its conftest.py), and the markers of what
each test needs (tests/utils/markers.py: ``make test-fast`` runs the tests that need no server, browser or root)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.core.settings import Settings
from model.runtime.services import Services
from tests import servers
from tests.utils import markers
from tests.utils.live_api import LiveApi, prepare_home, serve
from tests.utils.markers import needs
from tests.utils.services import migrated_services

# In-process training in tests tries one backbone (lite0, the best on the shared set) unless a test asks for
# more; the product default, every EfficientNet-Lite, is what the CLI, UI and DAG tests run in subprocesses
# (their environments start without SPROUT_* settings).
os.environ.setdefault("SPROUT_CANDIDATE_BACKBONES", "efficientnet_lite0")
# One directory of exported backbone graphs for the session (named by the weights' digest, as homes and workers may
# share one in production): each backbone is exported from torch once, not once per test home.
if "SPROUT_BACKBONE_GRAPHS" not in os.environ:
    os.environ["SPROUT_BACKBONE_GRAPHS"] = _GRAPHS = tempfile.mkdtemp(prefix="sprout-graphs-")

    def pytest_sessionfinish() -> None:
        shutil.rmtree(_GRAPHS, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markers.add_needs(items)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker (make test-fast)
        markers.slow_files_first(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    with markers.running(item):
        return (yield)


def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> None:
    markers.check_fixture(fixturedef)


# --- real servers ---
# Started lazily (only when a test asks for them), once per session, torn down at the end.
# See tests/servers/; they need PostgreSQL binaries, the venv's `weed` and `mlflow`.


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.server)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Services on a migrated SQLite or PostgreSQL database (one test, run on each)."""
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    services = migrated_services(Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                                          database_url=url))
    yield services
    services.close()


@pytest.fixture(scope="session")
@needs("server")
def postgres_url() -> Iterator[str]:
    """URL (``postgresql+psycopg2://...``) of an empty database on a throwaway PostgreSQL server.

    Shared by the whole session; use ``fresh_pg_url`` for a database of your own.
    """
    with servers.postgres_server() as url:
        yield url


@pytest.fixture
@needs("server")
def fresh_pg_url(postgres_url: str) -> Iterator[str]:
    """URL of a new, empty database made for this test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = servers.create_database(postgres_url, name)
    yield url
    servers.drop_database(postgres_url, name)


@pytest.fixture(scope="session")
@needs("server")
def s3_server() -> Iterator[servers.S3Server]:
    """A throwaway SeaweedFS S3 endpoint: ``.endpoint`` ("127.0.0.1:PORT"), ``.access_key``, ``.secret_key``.

    Shared by the whole session: isolate tests with a unique bucket or key prefix.
    """
    with servers.seaweedfs_server() as s3:
        yield s3


@pytest.fixture(scope="session")
@needs("server")
def mlflow(postgres_url: str, s3_server: servers.S3Server) -> Iterator[servers.MlflowServer]:
    """An MLflow server with basic-auth (own database on the session Postgres, artifacts on SeaweedFS).

    ``.uri``; clients authenticate with ``.client_env`` (MLFLOW_TRACKING_USERNAME / _PASSWORD).
    """
    backend = servers.create_database(postgres_url, "mlflow")
    with servers.mlflow_server(backend, s3_server) as server:
        yield server


@pytest.fixture(scope="session")
@needs("server")
def redis_server() -> Iterator[str]:
    """A throwaway Redis server (password, no persistence): its ``redis://:password@127.0.0.1:PORT/0`` URL, the
    shared rate-limit store of the route tests and of API replicas.

    Shared by the whole session: use keys of your own, or empty it after the test.
    """
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
@needs("server")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The real API (tests/utils/live_api.py) on a trained embedded home, started once per test session for the
    UI, monitoring and e2e tests."""
    home = prepare_home(tmp_path_factory.mktemp("live-api"))
    # the drift gauges refresh every second (they follow the monitoring tests' traffic)
    drift = {"SPROUT_DRIFT_REFRESH_SECONDS": "1", "SPROUT_DRIFT_FLUSH_SECONDS": "0.5"}
    with serve(home, env=drift) as api:
        yield api
