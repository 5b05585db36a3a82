"""Airflow for the DAG tests: its own virtualenv (``make install`` builds ``.venv-airflow``), a throwaway
AIRFLOW_HOME with a migrated SQLite database, and ``airflow_driver.py`` run in that virtualenv.

The tasks run the main virtualenv's ``sprout`` CLI (SPROUT_CLI) against an embedded SPROUT_HOME that the
tests prepare with ``model.*``. A missing Airflow virtualenv fails the tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dags.dag_runs import Driver
from tests.utils.markers import needs
from tests.utils.paths import REPO_ROOT, shared_graphs

AIRFLOW_VENV = REPO_ROOT / ".venv-airflow"
DRIVER = Path(__file__).with_name("airflow_driver.py")
SPROUT_CLI = Path(sys.executable).with_name("sprout")


def _clean_environ() -> dict[str, str]:
    """The test process's environment without Sprout or Airflow settings or a virtualenv's traces."""
    drop = ("SPROUT_", "AIRFLOW_", "AIRFLOW__", "AWS_")
    return {k: v for k, v in os.environ.items()
            if not k.startswith(drop) and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="session")
@needs("server")  # Airflow's own virtualenv
def airflow_python() -> Path:
    python = AIRFLOW_VENV / "bin" / "python"
    assert python.is_file(), f"Airflow virtualenv missing at {AIRFLOW_VENV}: run `make install`"
    return python


@pytest.fixture(scope="session")
def airflow_env(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a fresh Airflow (SQLite metadata DB, migrated once) whose DAGs folder is ``dags/``."""
    home = tmp_path_factory.mktemp("airflow")
    env = _clean_environ() | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "SPROUT_CLI": str(SPROUT_CLI),
        **shared_graphs(),  # backbone graphs exported once per session, not once per home
        # The tasks' CLI imports this checkout's code, also where the venv's editable install is another
        # checkout's (a git worktree); Airflow's own imports are unaffected (no name here clashes with its).
        "PYTHONPATH": str(REPO_ROOT),
        "SPROUT_TASK_RETRIES": "0",  # a failure shows at once instead of after the backoff
        "SPROUT_CANDIDATE_BACKBONES": "efficientnet_lite0,efficientnet_lite1",  # two mapped candidates
    }
    proc = subprocess.run([str(airflow_python.with_name("airflow")), "db", "migrate"], env=env, cwd=home,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return env


@pytest.fixture(scope="session")
def driver(airflow_python: Path, airflow_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Driver:
    """``driver(*args, env={...})``: run airflow_driver.py in the Airflow virtualenv, return its JSON."""
    workdir = tmp_path_factory.mktemp("driver")  # cwd of Airflow and the CLI: no stray .env is read
    counter = iter(range(1_000_000))

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> dict[str, Any]:
        out = workdir / f"result-{next(counter)}.json"
        proc = subprocess.run([str(airflow_python), str(DRIVER), *args, str(out)], env=airflow_env | (env or {}),
                              cwd=workdir, capture_output=True, text=True, timeout=timeout)
        log = (proc.stdout + proc.stderr)[-20000:]
        assert proc.returncode == 0 and out.is_file(), f"driver {args} failed:\n{log}"
        result = json.loads(out.read_text())
        result["log"] = log
        return result

    return run


@pytest.fixture(scope="session")
def dagbag(driver: Driver) -> dict[str, Any]:
    """The DAGs folder parsed with the default (local) runner."""
    return driver("structure")


@pytest.fixture(scope="session")
def dagbag_kubernetes(driver: Driver) -> dict[str, Any]:
    """The DAGs folder parsed with the Kubernetes runner, GPU node selector and a cron schedule set."""
    return driver("structure", env={
        "SPROUT_TASK_RUNNER": "kubernetes", "SPROUT_TRAINER_IMAGE": "registry.example/sprout:1.2",
        "SPROUT_K8S_NAMESPACE": "ml", "SPROUT_K8S_GPU_NODE_SELECTOR": '{"cloud.example/accelerator": "l4"}',
        "SPROUT_K8S_GPU_TOLERATIONS": '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, '
                                      '{"key": "spot", "operator": "Equal", "value": "true", '
                                      '"effect": "NoExecute", "tolerationSeconds": 60}]',
        "SPROUT_RETRAIN_SCHEDULE": "0 3 * * 1", "SPROUT_TASK_RETRIES": "3",
    })
