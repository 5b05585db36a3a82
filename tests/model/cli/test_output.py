"""How commands show progress (model/cli/output.py): bars on a terminal, none when piped or with --json (stdout
stays one JSON object)."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model.cli.invocation import Invocation, running
from model.cli.output import Bars
from tests.model.cli.test_main import SPROUT, sprout
from tests.utils.images import dataset_images
from tests.utils.services import TEST_SPLIT_KEY


def run_on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (what a person sees) and stdout piped."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=secondary, env=env, cwd=cwd)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode() if proc.stdout else ""
    os.close(primary)
    return proc.wait(timeout=300), out, seen.decode(errors="replace")


def test_import_shows_a_bar_on_a_terminal_and_none_with_json_or_piped(tmp_path: Path) -> None:
    tree = tmp_path / "tree" / "grass"
    tree.mkdir(parents=True)
    for path in dataset_images("grass", 3):
        shutil.copyfile(path, tree / path.name)
    home = tmp_path / "home"
    sprout(home, "db", "upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(home), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY, "COLUMNS": "100"}
    code, out, terminal = run_on_terminal([SPROUT, "import", str(tmp_path / "tree")], env, tmp_path)
    assert code == 0 and "importing" in terminal and "3/3" in terminal, terminal
    code, out, terminal = run_on_terminal([SPROUT, "--json", "import", str(tmp_path / "tree")], env, tmp_path)
    assert code == 0 and "importing" not in terminal and out.count("\n") == 1, (out, terminal)
    piped = subprocess.run([SPROUT, "import", str(tmp_path / "tree")], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=300)
    assert piped.returncode == 0 and "importing" not in piped.stderr and "skipped 3 duplicates" in piped.stderr


def test_progress_bar_only_on_a_terminal_and_never_with_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with running(Invocation(json=False, stdout=sys.stdout)):
        assert Bars("scoring").disable is False
    with running(Invocation(json=True, stdout=sys.stdout)):
        assert Bars("scoring").disable is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)  # piped
    with running(Invocation(json=False, stdout=sys.stdout)):
        assert Bars("scoring").disable is True
