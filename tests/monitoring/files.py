"""The monitoring files under test (``monitoring/``), their loaders and the Prometheus binaries.

The binaries come from Debian's ``prometheus`` package (``.ci/run`` installs it); a missing one fails the
test with a message saying so, it never skips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.utils.markers import require_marker
from tests.utils.paths import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
RULES = MONITORING / "rules" / "sprout.rules.yml"
RULES_TEST = MONITORING / "rules" / "sprout.rules.test.yml"
GRAFANA = MONITORING / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "sprout.yml"
DASHBOARDS = {name: GRAFANA / "dashboards" / f"{name}.json" for name in ("api-usage", "streamlit-usage",
                                                                         "model-training")}
API_JOB = "sprout-api"
COMPOSE_TARGET = "api:8000"

PROMTOOL = Path("/usr/bin/promtool")
PROMETHEUS = Path("/usr/bin/prometheus")

# Grafana's variables, as a dashboard would expand them (range 1h, step 15s, scrape interval 1s).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def require_binary(path: Path) -> str:
    """``path`` if it is an executable; otherwise the test fails and says how to install it."""
    require_marker("root", f"{path} (the Debian package 'prometheus')")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} not found: install the Debian package 'prometheus' (apt-get install -y prometheus; "
                    ".ci/run installs it when it is missing)")
    return str(path)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_dashboard(name: str) -> dict[str, Any]:
    return json.loads(DASHBOARDS[name].read_text())


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of ``sprout.rules.yml`` (with its group's name under ``group``)."""
    return [{**rule, "group": group["name"]} for group in load_yaml(RULES)["groups"] for rule in group["rules"]
            if "alert" in rule]


def dashboard_targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(dashboard name, panel, target) for every query of every dashboard panel."""
    return [(name, panel, target) for name in DASHBOARDS for panel in load_dashboard(name)["panels"]
            for target in panel.get("targets", [])]


def expand_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not expand is left in: {expr}"
    return expr
