"""``bench/plot_scale.py`` draws the curves of ``bench/scale.py --json`` runs (the Scaling page's figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.utils.paths import REPO_ROOT


def run_json(path: Path, stack: str, scale: float) -> Path:
    figures = ["GET /admin/samples page p50", "GET /admin/samples next page (cursor) p50", "queue novelty p50",
               "GET /admin/stats p50", "sprout train after 10 approvals", "sprout train peak RSS"]
    results = [{"n": n, "values": {f: scale * (1 + i) * (n / 1000) ** 0.1 for i, f in enumerate(figures)},
                "units": dict.fromkeys(figures, "ms")} for n in (1000, 10000, 100000)]
    path.write_text(json.dumps({"stack": stack, "results": results}))
    return path


def test_each_run_becomes_a_line_per_figure_in_each_stacks_panel(tmp_path: Path) -> None:
    runs = [run_json(tmp_path / "emb.json", "embedded (SQLite, local object store)", 1.0),
            run_json(tmp_path / "real.json", "real (PostgreSQL, SeaweedFS)", 2.0)]
    out = tmp_path / "plots"
    proc = subprocess.run([sys.executable, "bench/plot_scale.py", *map(str, runs), "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    requests, retrain = (out / "requests.svg").read_text(), (out / "retrain.svg").read_text()
    for text in ("embedded stack", "real stack", "/admin/samples page (cursor)", "queue: novelty", "run emb"):
        assert text in requests, text
    assert "peak RSS (MB)" in retrain and "real, run real" in retrain
    again = tmp_path / "again"
    subprocess.run([sys.executable, "bench/plot_scale.py", *map(str, runs), "--out", str(again)], cwd=REPO_ROOT,
                   check=True, capture_output=True, timeout=120)
    assert (again / "requests.svg").read_bytes() == (out / "requests.svg").read_bytes()  # reproducible
