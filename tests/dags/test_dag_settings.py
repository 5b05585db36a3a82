"""The DAGs' settings (``dags/sprout_dag_support/settings.py``) against the application's: a variable both read
has one default, so a DAG parsed with nothing configured does what the CLI its tasks run would do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model.core.settings import Settings
from tests.utils.paths import REPO_ROOT


@pytest.fixture
def empty_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ``SPROUT_*`` variable and no ``.env`` file: every setting at its default."""
    import os

    for name in [n for n in os.environ if n.startswith("SPROUT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "dags"))
    yield


def _plain(value: Any) -> Any:
    """A setting's value in one comparable form: a list setting as its items, a path as its text."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "," in value:
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def shared_defaults() -> dict[str, tuple[Any, Any]]:
    """Variable → (the DAGs' default, the application's default), for every variable both read."""
    from sprout_dag_support.settings import DagSettings

    dag_settings, app_settings = DagSettings(), Settings(_env_file=None)  # type: ignore[call-arg]
    app_fields = {f"SPROUT_{name.upper()}": name for name in Settings.model_fields}
    return {field.validation_alias: (_plain(getattr(dag_settings, name)),
                                     _plain(getattr(app_settings, app_fields[field.validation_alias])))
            for name, field in DagSettings.model_fields.items() if field.validation_alias in app_fields}


@pytest.mark.usefixtures("empty_environment")
def test_the_dags_and_the_application_share_their_defaults() -> None:
    shared = shared_defaults()
    assert {"SPROUT_CANDIDATE_BACKBONES", "SPROUT_RETRAIN_ASSET", "SPROUT_SEED_DATASET"} <= set(shared)
    differing = {name: pair for name, pair in shared.items() if pair[0] != pair[1]}
    assert differing == {}, f"(DAG default, application default): {differing}"
