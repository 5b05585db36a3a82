"""What a test needs besides the project's virtualenv, as markers; ``make test-fast`` runs the tests that have none.

- ``server``: starts or uses a server: PostgreSQL, SeaweedFS, MLflow, Redis, Airflow (and its own virtualenv),
  the API under uvicorn, Streamlit, Prometheus.
- ``browser``: drives headless Chromium (Playwright).
- ``root``: runs a tool of a system package, which only root installs (scripts/install-test-deps.sh:
  docker-compose, promtool, Node.js/npm).

A test gets them at collection (``add_needs``, called by tests/conftest.py): from its folder (``FOLDER_NEEDS``),
from the fixtures it uses, however indirectly (a fixture declares what it needs with ``@needs(...)``), and from
the ``integration`` marker. A test that starts a server or runs such a tool itself is marked by hand
(``@pytest.mark.server``). Run time keeps the marks honest (``require_marker``): a fixture that needs a marker, a
server of tests/servers/, the live API or a system tool fails at once in a test without that marker, so such a
test can never pass unnoticed in ``make test-fast``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

NEEDS = ("server", "browser", "root")
TESTS = Path(__file__).resolve().parents[1]
# Folders whose every test needs these (tests/<folder>/...): they start servers themselves or run Airflow.
FOLDER_NEEDS: dict[str, tuple[str, ...]] = {
    "dags": ("server",),  # Airflow's virtualenv runs every DAG test
    "e2e": ("server", "browser"),
    "integration": ("server",),
}
# Older markers that imply a need.
IMPLIED: dict[str, tuple[str, ...]] = {"integration": ("server",)}

_ATTRIBUTE = "sprout_test_needs"
_running: list[pytest.Item] = []

F = TypeVar("F", bound=Callable[..., object])


def needs(*markers: str) -> Callable[[F], F]:
    """Declare what a fixture needs (put it under ``@pytest.fixture``): every test that uses the fixture gets
    these markers."""
    unknown = set(markers) - set(NEEDS)
    assert not unknown, f"unknown needs {unknown}: one of {NEEDS}"

    def declare(fixture: F) -> F:
        setattr(fixture, _ATTRIBUTE, markers)
        return fixture

    return declare


def _declared(fixturedef: pytest.FixtureDef[object]) -> tuple[str, ...]:
    return tuple(getattr(fixturedef.func, _ATTRIBUTE, ()))


def needs_of(item: pytest.Item) -> set[str]:
    """The markers ``item`` needs: its folder's, its older markers', and those of every fixture it uses."""
    wanted: set[str] = set()
    path = item.path.resolve()
    if path.is_relative_to(TESTS) and len(parts := path.relative_to(TESTS).parts) > 1:
        wanted.update(FOLDER_NEEDS.get(parts[0], ()))
    for marker, implied in IMPLIED.items():
        if item.get_closest_marker(marker) is not None:
            wanted.update(implied)
    info = getattr(item, "_fixtureinfo", None)  # the fixture closure pytest computed (Function items)
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info is not None else None
        if defs:
            wanted.update(_declared(defs[-1]))  # the last definition is the one the test gets
    return wanted


def add_needs(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(needs_of(item)):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)


@contextmanager
def running(item: pytest.Item) -> Iterator[None]:
    """While ``item`` runs (setup, call, teardown), ``require_marker`` checks its markers."""
    _running.append(item)
    try:
        yield
    finally:
        _running.pop()


def require_marker(marker: str, what: str) -> None:
    """Fail the running test if it lacks ``marker``: it is about to use ``what``, which needs it."""
    item = _running[-1] if _running else None  # None: outside a test (a script, a session teardown)
    if item is not None and item.get_closest_marker(marker) is None:
        pytest.fail(f"{item.nodeid} uses {what}, which needs the '{marker}' marker: mark the test "
                    f"(@pytest.mark.{marker}, or pytest.param(..., marks=pytest.mark.{marker})) or the fixture "
                    f"(@needs('{marker}'), tests/utils/markers.py)", pytrace=False)


def check_fixture(fixturedef: pytest.FixtureDef[object]) -> None:
    """A fixture that needs markers, set up for a test without them (e.g. by ``request.getfixturevalue``)."""
    for marker in _declared(fixturedef):
        require_marker(marker, f"the fixture '{fixturedef.argname}'")


def slow_files_first(items: list[pytest.Item]) -> None:
    """Order the files by how many ``slow`` tests they hold, most first (a test's place in its file unchanged).

    For ``make test-fast``'s workers (pytest-xdist, a file per worker at a time): a long file started last would
    end the run alone on one core."""
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # stable: files of equal weight keep their order
