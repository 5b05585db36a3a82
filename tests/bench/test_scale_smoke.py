"""A small-N run of ``bench/scale.py`` on the embedded stack: it builds two homes through Sprout's own paths (import,
the first training, uploads to the real API, approvals through the review route, ``sprout train``) and prints
every figure for each N and their ratios. The figures themselves are the bench's business, not the test's."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.paths import REPO_ROOT

ROWS = [
    "build: images generated", "build: sprout import", "build: embedding cache (synthetic)",
    "build: sprout train --force", "build: uploads (pending)", "build: total",
    "POST /samples (upload) p50", "POST /samples (upload) p99", "POST /predict p50",
    "GET /admin/samples page p50", "GET /admin/samples page p99",
    "GET /admin/samples next page (cursor) p50", "GET /admin/samples next page (cursor) p99",
    "GET /admin/samples novelty next page (cursor) p50",
    *(f"queue {order} p50" for order in ("uncertainty", "novelty", "diverse", "suspect", "oldest", "newest")),
    "GET /admin/label-issues first (ranks the run)", "GET /admin/label-issues p50", "queue suspect (approved) p50",
    "GET /admin/stats p50", "GET /models p50", "GET /admin/drift p50",
    "sprout train after 10 approvals", "sprout train peak RSS", "database per sample", "object store per sample",
]


@pytest.mark.server
def test_scale_bench_prints_every_figure_and_the_ratios(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")}
    env["SPROUT_BACKBONE_GRAPHS"] = os.environ["SPROUT_BACKBONE_GRAPHS"]  # the session's exported graphs
    proc = subprocess.run([sys.executable, "bench/scale.py", "--sizes", "100,200", "--repeats", "3",
                           "--backbones", "efficientnet_lite0", "--json", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ratios = proc.stdout[proc.stdout.index("ratios 200/100"):]
    assert "ratio 200/100" in ratios
    for row in ROWS:
        line = next((ln for ln in ratios.splitlines() if f" {row} " in ln), None)
        assert line is not None, f"no row {row!r} in the ratios table:\n{ratios}"
        assert line.rstrip(" │").endswith("×"), line  # a ratio in the last column
    figures = json.loads(out.read_text())
    assert [r["n"] for r in figures["results"]] == [100, 200]
    for result in figures["results"]:
        assert sorted(result["values"]) == sorted(ROWS)
        assert all(math.isfinite(v) and v >= 0 for v in result["values"].values()), result
