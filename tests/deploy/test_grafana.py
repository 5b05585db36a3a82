"""The Grafana dashboards (monitoring/grafana/dashboards/*.json) type-checked against Grafana's own schema
types: npm @grafana/schema + TypeScript's `tsc --noEmit` (installed by `make install` with `npm ci` in
tests/deploy/grafana). See grafana/dashboard-types.ts for how each dashboard is checked. Their PromQL is run
against a real Prometheus by tests/monitoring; test_helm.py checks the chart ships these very files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.deploy.tools import GRAFANA_CHECK, dashboard_files, load_json, require, run

pytestmark = pytest.mark.root  # tsc and @grafana/schema from npm (Debian's nodejs/npm)

TSC = GRAFANA_CHECK / "node_modules" / ".bin" / "tsc"
TYPES = GRAFANA_CHECK / "dashboard-types.ts"


def typecheck(dashboards: dict[str, dict], workdir: Path) -> tuple[int, str]:
    """Run tsc over one generated module per dashboard; (exit code, diagnostics)."""
    tsc = require(TSC, "tsc (npm typescript)", "cd tests/deploy/grafana && npm ci (make install runs it)")
    (workdir / "node_modules").symlink_to(GRAFANA_CHECK / "node_modules", target_is_directory=True)
    shutil.copy(TYPES, workdir / TYPES.name)
    files = []
    for name, dashboard in dashboards.items():
        module = workdir / f"{name.replace('-', '_')}.ts"
        module.write_text('import type { SproutDashboard } from "./dashboard-types.js";\n\n'
                          f"export const dashboard: SproutDashboard = {json.dumps(dashboard, indent=2)};\n")
        files.append(module.name)
    (workdir / "tsconfig.json").write_text(json.dumps({
        "compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext", "moduleResolution": "nodenext",
                            "target": "es2022", "skipLibCheck": True, "types": []},
        "files": [TYPES.name, *files],
    }))
    proc = run([tsc, "-p", str(workdir / "tsconfig.json")], check=False, cwd=workdir, timeout=180)
    return proc.returncode, proc.stdout + proc.stderr


def test_toolchain_versions() -> None:
    version = run([require(TSC, "tsc", "npm ci in tests/deploy/grafana"), "--version"]).stdout
    schema = load_json(GRAFANA_CHECK / "node_modules" / "@grafana" / "schema" / "package.json")["version"]
    wanted = load_json(GRAFANA_CHECK / "package.json")["devDependencies"]
    assert f"Version {wanted['typescript']}" in version and schema == wanted["@grafana/schema"]


def test_dashboards_satisfy_grafanas_schema_types(tmp_path: Path) -> None:
    dashboards = {path.stem: load_json(path) for path in dashboard_files()}
    code, output = typecheck(dashboards, tmp_path)
    assert code == 0, f"the dashboards do not type-check against @grafana/schema:\n{output}"


@pytest.mark.parametrize("mutation", ["enum", "unknown-key", "panel-type", "gridpos"])
def test_the_check_catches_broken_dashboards(mutation: str, tmp_path: Path) -> None:
    first = dashboard_files()[0]
    dashboard = load_json(first)
    panel = dashboard["panels"][0]
    if mutation == "enum":
        panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})["defaults"]["color"] = {"mode": "rainbow"}
    elif mutation == "unknown-key":
        dashboard["refreshh"] = "30s"
    elif mutation == "panel-type":
        panel["type"] = "timeseriess"
    else:
        panel["gridPos"] = {"x": 0, "y": 0, "w": "wide", "h": 4}
    code, output = typecheck({first.stem: dashboard}, tmp_path)
    assert code != 0 and "error TS" in output, output
