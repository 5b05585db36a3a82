"""Paths and loaders of the deployment files, and the validation tools the tests run.

Every tool is installed by the project (``make install``: the ``dev`` extra, ``npm ci`` in tests/deploy/grafana;
``.ci/run``: Debian's docker-compose). A missing tool fails the test that needs it, with the way to install
it; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.utils.paths import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
DOCKERFILES = {name: DOCKER / f"{name}.Dockerfile" for name in ("api", "streamlit", "trainer", "airflow")}
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
COMPOSE = REPO_ROOT / "docker-compose.yml"
GEN_ENV = REPO_ROOT / "scripts" / "gen-env.sh"
CHART = REPO_ROOT / "helm" / "sprout"
CHART_CI_VALUES = CHART / "ci" / "gpu-external-values.yaml"
AIRFLOW_VALUES = REPO_ROOT / "helm" / "airflow-values.yaml"
DASHBOARDS_DIR = REPO_ROOT / "monitoring" / "grafana" / "dashboards"
GRAFANA_CHECK = Path(__file__).with_name("grafana")
AIRFLOW_PYTHON = REPO_ROOT / ".venv-airflow" / "bin" / "python"
KUBE_VERSION = "1.30.0"

BIN = Path(sys.executable).parent


def require(path: Path | str | None, what: str, how: str) -> str:
    """``path`` if it is an executable file; otherwise the test fails and says how to install it."""
    if path is None or not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found ({path}): {how}")
    return str(path)


def venv_tool(name: str) -> str:
    return require(BIN / name, name, "pip install -e '.[dev]' (make install)")


def docker_compose() -> str:
    return require(shutil.which("docker-compose"), "docker-compose (v1)",
                   "apt-get install -y docker-compose (.ci/run installs it when missing)")


def run(cmd: list[str], *, timeout: float = 120, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check:
        assert proc.returncode == 0, \
            f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_yaml_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def dashboard_files() -> list[Path]:
    """Every dashboard JSON of monitoring/grafana/dashboards; none there fails the test."""
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert files, f"no Grafana dashboards in {DASHBOARDS_DIR}"
    return files


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(exclude?, pattern) per line of .dockerignore, in order (the last matching line wins)."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        patterns.append((not negated, pattern.strip("/")))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching (Go filepath.Match plus `**`), anchored at the context root."""
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            parts.append(pattern[i:end + 1])
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts) + "(?:/.*)?")  # a directory's pattern covers what is inside it


def in_build_context(relpath: str) -> bool:
    """Whether the repository file ``relpath`` is sent to the Docker daemon as build context."""
    included = True
    for exclude, pattern in dockerignore_patterns():
        if _pattern_regex(pattern).fullmatch(relpath):
            included = not exclude
    return included


def build_context_files() -> list[str]:
    """The repository's files (git's view: tracked and untracked, not ignored) that go into the context."""
    proc = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT)
    return [f for f in proc.stdout.splitlines() if (REPO_ROOT / f).exists() and in_build_context(f)]
