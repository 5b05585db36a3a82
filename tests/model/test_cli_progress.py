"""Progress bars: on a terminal, and none when piped or with --json (stdout stays one JSON object)."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

from model.core.progress import reporting, step
from tests.model.test_cli import SPROUT, sprout
from tests.utils.images import dataset_images
from tests.utils.services import TEST_SPLIT_KEY


def test_steps_report_only_to_a_listener() -> None:
    seen: list[tuple[str, int, int]] = []
    step("nobody listens", 3)(3)  # no reporter: nothing happens
    with reporting(lambda what, total: lambda done: seen.append((what, total, done))):
        advance = step("embedding", 5)
        advance(2)
        advance(3)
        step("empty", 0)(0)  # nothing to do: not reported
    assert seen == [("embedding", 5, 2), ("embedding", 5, 3)]


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
