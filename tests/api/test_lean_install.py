"""`pip install 'sprout[api]'` into a fresh virtualenv: no torch, no Streamlit, and the API starts and predicts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.utils.images import dataset_images
from tests.utils.live_api import free_port, wait_ready
from tests.utils.paths import REPO_ROOT

# installs the API's dependencies (from the pip cache when warm) and serves them under uvicorn
pytestmark = [pytest.mark.slow, pytest.mark.server]


def source_tree(dest: Path) -> Path:
    """The committed (and added) files only, so the install builds nothing inside the checkout."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                           check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    return dest


def same_versions(dest: Path) -> Path:
    """A pip constraints file of this environment's versions: the lean install resolves to the versions the rest
    of the suite runs (a release published since this venv was built, e.g. an MLflow whose client migrates the
    shared home's tracking database, would otherwise land in the lean venv alone)."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout.splitlines()
    dest.write_text("\n".join(line for line in frozen if "==" in line and " @ " not in line) + "\n")
    return dest


def size_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) // 2**20


def test_the_api_extra_installs_without_torch_or_streamlit_and_serves(tmp_path: Path, trained_home: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    src = source_tree(tmp_path / "src")
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", "-c",
                              str(same_versions(tmp_path / "constraints.txt")), f"{src}[api]"],
                             capture_output=True, text=True, timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    absent = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in "
                             "('torch', 'torchvision', 'timm', 'streamlit', 'matplotlib') if u.find_spec(m)])"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    assert absent.stdout.strip() == "[]", absent.stdout
    print(f"\nsprout[api] virtualenv: {size_mb(venv)} MB")  # noqa: T201 (the figure the note reports)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPROUT_", "PYTHON"))}
    env |= {"SPROUT_HOME": str(trained_home)}
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(venv / "bin" / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port",
                                 str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log_path)
        photo = dataset_images("grass", 120)[-1]
        resp = httpx.post(f"http://127.0.0.1:{port}/predict", files={"file": ("g.jpg", photo.read_bytes())},
                          timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.json()["label"] in {"dandelion", "grass"} and resp.json()["model_version"] == "1"
        where = subprocess.run([str(python), "-c", "import api, onnxruntime; print(api.__file__)"],
                               capture_output=True, text=True, check=True, cwd=tmp_path, env=env)
        assert str(venv) in where.stdout  # served by the installed package, not the checkout
    finally:
        proc.terminate()
        proc.wait(timeout=30)
