"""The docs site builds offline without a broken link, and its generated pages match the code."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current() -> None:
    stale = _gen_docs().stale_pages()
    assert not stale, f"stale: {[str(p.relative_to(ROOT)) for p in stale]}; run python scripts/gen_docs.py"


def test_mkdocs_builds_strict_offline(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,  # no --quiet: it hides the warnings strict counts
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_MKDOCS_2_WARNING": "1",
             "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},  # any fetch would fail
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "configuration.html").exists()  # the offline plugin: plain file names


def test_readme_is_one_page_whose_links_lead_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 10_500
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert targets and all((ROOT / target).is_file() for target in targets), targets
