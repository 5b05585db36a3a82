"""The layout docs/concepts/architecture.md describes, kept by tests: import-linter contracts, ``model/``'s shape."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("api", "streamlit_app", "dags", "model", "db")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_import_contracts_are_kept() -> None:
    proc = lint_imports(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("model/serving/predictor.py", "import torch", "ONNX Runtime alone"),
    ("model/core/settings.py", "from model.learning import pipeline", "model/ is layered"),
    ("model/data/images.py", "import fastapi", "no web framework"),
    ("streamlit_app/client.py", "from model.core import settings", "HTTP only"),
    ("api/deps.py", "import streamlit_app.client", "never import each other"),
])
def test_a_deliberate_violation_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # deliberate violation\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:]
    broken = [row for row in proc.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken) or contract in proc.stdout.split("Broken contracts")[-1], \
        proc.stdout[-3000:]


def test_model_root_holds_only_the_cli_and_each_folder_is_a_layer() -> None:
    """Folders are named by role and cohesion decides their size; each one is a layer of the contract."""
    model = REPO_ROOT / "model"
    assert sorted(p.name for p in model.glob("*.py")) == ["__init__.py"]
    assert (model / "cli" / "__init__.py").is_file()
    folders = {p.name for p in model.iterdir() if p.is_dir() and p.name != "__pycache__"}
    for folder in folders:
        assert (model / folder / "__init__.py").is_file(), folder
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c.get("containers") == ["model"]]
    assert folders == {name.strip() for layer in layers for name in layer.split("|")}


def test_routes_and_the_cli_build_no_queries() -> None:
    offenders = []
    for path in [*(REPO_ROOT / "api").rglob("*.py"), *(REPO_ROOT / "model").rglob("*.py")]:
        text = path.read_text()
        if any(token in text for token in ("select(", "session.execute(", "session.scalar(", "text(\"SELECT")):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == [], f"queries belong in db/queries.py: {offenders}"


def test_the_api_starts_without_the_training_and_statistics_libraries(tmp_path: Path) -> None:
    """The API process imports none of them at startup (each costs resident memory in every API worker);
    the admin routes that need scikit-learn or scipy import them when called."""
    heavy = ("torch", "torchvision", "timm", "sklearn", "scipy", "pandas", "pyarrow", "cleanlab", "matplotlib",
             "streamlit", "mlflow")
    code = f"import sys, api.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def test_only_api_state_touches_the_application_state() -> None:
    """Routes read what the lifespan built through ``api/deps.py`` (the typed ``AppState``), never ``app.state``."""
    offenders = [str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "api").rglob("*.py")
                 if path.name != "state.py" and "app.state." in path.read_text()]
    assert offenders == [], offenders


def test_the_tests_mirror_the_packages() -> None:
    """tests/model/ and tests/api/ hold a folder per folder of model/ and api/ they test, and every test of
    model/ lives in its layer's folder (docs/testing.md)."""
    for package in ("model", "api"):
        folders = [p.name for p in (REPO_ROOT / "tests" / package).iterdir() if p.is_dir() and p.name != "__pycache__"]
        assert [f for f in folders if not (REPO_ROOT / package / f).is_dir()] == [], folders
    assert sorted(p.name for p in (REPO_ROOT / "tests" / "model").glob("test_*.py")) == []
