"""``make test-fast`` is honest (tests/utils/markers.py): a test that needs a server gets the ``server`` marker,
and a test without it cannot start one, not even through ``request.getfixturevalue``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.utils.paths import REPO_ROOT

TESTS = '''
import pytest
from tests import servers


def test_uses_a_server_fixture(postgres_url):
    pass


def test_starts_a_server_itself_unmarked():
    with servers.redis_server():
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    return request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None


def test_asks_for_a_server_fixture_unmarked(database):
    pass
'''


def test_server_tests_are_marked_and_unmarked_ones_start_no_server(tmp_path: Path) -> None:
    (tmp_path / "test_needs.py").write_text(TESTS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"), "-p", "tests.conftest",
         "-p", "no:cacheprovider", "-q", "-rA", "-m", "not server and not browser and not root", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    # test_uses_a_server_fixture is marked from its fixture (deselected); the others fail before any server starts
    assert "1 failed, 1 passed, 1 deselected, 1 error" in out, out
    assert "PASSED test_needs.py::test_asks_for_a_server_fixture_unmarked[sqlite]" in out, out
    for test, what in [("test_starts_a_server_itself_unmarked", "redis-server"),
                       ("test_asks_for_a_server_fixture_unmarked[postgresql]", "the fixture 'postgres_url'")]:
        assert f"test_needs.py::{test} uses {what}, which needs the 'server' marker" in out, out
