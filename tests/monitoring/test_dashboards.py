"""The Grafana dashboards and their datasource, checked statically and against a real Prometheus.

The live part starts ``/usr/bin/prometheus`` (Debian package) with a copy of ``monitoring/prometheus.yml`` whose
only changes are the target (the ``live_api`` fixture's uvicorn instead of ``api:8000``), a 1 s scrape and rule
evaluation interval and absolute rule paths. Real traffic goes to the real API in two rounds, each followed by a
scrape, so counters move between scrapes. Then every query of every dashboard panel runs through Prometheus'
HTTP API (with Grafana's variables expanded): it must parse and return at least one finite value. Every alert
expression must parse and its rule evaluate without error; the metrics and label values the rules select must
exist on the real API.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.monitoring.files import (
    API_JOB,
    COMPOSE_TARGET,
    DASHBOARD_PROVIDERS,
    DASHBOARDS,
    DATASOURCES,
    PROMETHEUS,
    PROMETHEUS_CONFIG,
    PROMTOOL,
    alert_rules,
    dashboard_targets,
    expand_grafana_variables,
    load_dashboard,
    load_yaml,
    require_binary,
)
from tests.servers.processes import Process, free_port, wait_ready
from tests.utils.images import dataset_images, random_image_bytes
from tests.utils.live_api import LiveApi
from tests.utils.markers import needs

PANEL_TYPES = {"timeseries", "stat", "bargauge"}
WAIT_S = 60

# Metrics each dashboard must show (the list).
REQUIRED_METRICS = {
    "api-usage": ["sprout_api_requests_total", "sprout_api_request_duration_seconds_bucket",
                  "sprout_predictions_total", "sprout_prediction_confidence_bucket", "sprout_drift_score",
                  "sprout_drift_threshold", "sprout_drift_detected", "sprout_live_mean_confidence",
                  "sprout_reference_mean_confidence", "sprout_novel_share", "sprout_drift_window_size"],
    "streamlit-usage": ["sprout_ui_page_views_total", "sprout_ui_predict_clicks_total"],
    "model-training": ["sprout_model_version", "sprout_model_test_accuracy", "sprout_training_runs_total",
                       "sprout_training_last_gate_passed", "sprout_samples", "sprout_samples_approved_since_last_run",
                       # the Rollout row (issue 25)
                       "sprout_rollout_open", "sprout_rollout_age_seconds", "sprout_rollout_info",
                       "sprout_rollout_reviewed_pairs", "sprout_rollout_agreement",
                       "sprout_rollout_challenger_error_rate", "sprout_rollout_live_accuracy",
                       "sprout_rollout_scored_total", "sprout_canary_answers_total", "sprout_rollout_p99_seconds",
                       "sprout_rollout_decisions"],
}
# Exported only while a rollout is open (and has data): the live API of these tests has none, so their panels may be
# empty there; test_rollout_row_shows_an_open_rollout evaluates them on an open rollout's series instead.
DURING_A_ROLLOUT = {"sprout_rollout_info", "sprout_rollout_reviewed_pairs", "sprout_rollout_agreement",
                    "sprout_rollout_challenger_error_rate", "sprout_rollout_live_accuracy",
                    "sprout_rollout_p99_seconds"}

TARGETS = dashboard_targets()
TARGET_IDS = [f"{name}/{panel['id']}{target['refId']}" for name, panel, target in TARGETS]
ALERTS = alert_rules()


def datasource() -> dict[str, Any]:
    [source] = load_yaml(DATASOURCES)["datasources"]
    return source


# --------------------------------------------------------------------------- static checks


def test_datasource_and_dashboard_provider_are_provisioned() -> None:
    source = datasource()
    assert source["type"] == "prometheus" and source["uid"] and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    [provider] = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_is_well_formed(name: str) -> None:
    dash = load_dashboard(name)
    uid = datasource()["uid"]
    assert dash["uid"] == f"sprout-{name}" and dash["title"].startswith("Sprout") and 36 <= dash["schemaVersion"] <= 41
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}: {ids}"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        where = f"{name} panel {panel['id']} ({panel.get('title')})"
        if panel["type"] == "row":  # a titled band across the dashboard, grouping the panels below it
            assert panel["title"] and panel["panels"] == [] and "targets" not in panel, where
            assert panel["gridPos"]["x"] == 0 and panel["gridPos"]["w"] == 24 and panel["gridPos"]["h"] == 1, where
            cells |= {(x, panel["gridPos"]["y"]) for x in range(24)}
            continue
        assert panel["type"] in PANEL_TYPES and panel["title"], where
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, where
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, f"{where} overlaps another panel"
        cells |= mine
        targets = panel["targets"]
        assert targets, f"{where} has no query"
        assert len({t["refId"] for t in targets}) == len(targets), where
        for target in targets:
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), f"{where} {target['refId']}"
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, f"{where} {target['refId']}"
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    for metric in REQUIRED_METRICS[name]:
        assert re.search(rf"\b{metric}\b", exprs), f"{name} does not show {metric}"


def fold_check(expr: str, expected: dict[str, float]) -> dict[str, Any]:
    """A promtool ``promql_expr_test`` of a panel's query at 60 min: one sample per label in ``expected``."""
    return {"expr": expand_grafana_variables(expr), "eval_time": "60m",
            "exp_samples": [{"labels": f'{{label="{label}"}}', "value": value} for label, value in expected.items()]}


@pytest.mark.root
def test_predictions_per_label_show_the_top_five_labels_and_the_rest_as_other(tmp_path: Path) -> None:
    """Seven labels, label<i> predicted i times a second for two hours: both per-label panels show the five most
    predicted labels and one "other labels" series summing label1 and label2 (promtool evaluates the queries)."""
    panels = {p["title"]: p for p in load_dashboard("api-usage")["panels"]}
    [rate] = [t["expr"] for t in panels["Predictions per label"]["targets"]]
    [increase] = [t["expr"] for t in panels["Predictions per label (time range)"]["targets"]]
    series = [{"series": f'sprout_predictions_total{{job="{API_JOB}", instance="{COMPOSE_TARGET}", label="label{i}"}}',
               "values": f"0+{15 * i}x480"} for i in range(1, 8)]  # every 15 s, for 2 h
    top = {f"label{i}": float(i) for i in range(3, 8)}
    unit = {"rule_files": [], "evaluation_interval": "15s", "tests": [{
        "interval": "15s", "input_series": series, "promql_expr_test": [
            fold_check(rate, top | {"other labels": 1.0 + 2.0}),
            fold_check(increase, {label: 3600 * per_s for label, per_s in top.items()} | {"other labels": 3600 * 3.0}),
        ]}]}
    path = tmp_path / "fold.test.yml"
    path.write_text(yaml.safe_dump(unit))
    proc = subprocess.run([require_binary(PROMTOOL), "test", "rules", path.name], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def row_panels(name: str, row: str) -> list[dict[str, Any]]:
    """The panels listed after the row titled ``row``, up to the next row."""
    panels, inside = [], False
    for panel in load_dashboard(name)["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == row
        elif inside:
            panels.append(panel)
    return panels


# Two replicas scraped every 15 s for an hour during a shadow rollout of version 7 against 6 (the database gauges
# the same on both; the counters each replica's own), and four decisions taken earlier.
ROLLOUT_GAUGES = {
    "sprout_rollout_open": 1, "sprout_rollout_age_seconds": 5400, "sprout_rollout_reviewed_pairs": 40,
    "sprout_rollout_agreement": 0.9, "sprout_rollout_challenger_error_rate": 0.02,
    'sprout_rollout_info{challenger="7", champion="6", mode="shadow"}': 1,
    'sprout_rollout_live_accuracy{model="champion"}': 0.85, 'sprout_rollout_live_accuracy{model="challenger"}': 0.875,
    'sprout_rollout_p99_seconds{model="champion"}': 0.04, 'sprout_rollout_p99_seconds{model="challenger"}': 0.05,
    'sprout_rollout_decisions{outcome="aborted", decided_by_rule="true"}': 2,
    'sprout_rollout_decisions{outcome="aborted", decided_by_rule="false"}': 1,
    'sprout_rollout_decisions{outcome="promoted", decided_by_rule="true"}': 3,
    'sprout_rollout_decisions{outcome="promoted", decided_by_rule="false"}': 0,
}
ROLLOUT_COUNTERS = {  # per replica, per 15 s
    'sprout_rollout_scored_total{mode="shadow", outcome="agree"}': 27, 'sprout_rollout_scored_total'
    '{mode="shadow", outcome="disagree"}': 3, 'sprout_rollout_scored_total{mode="shadow", outcome="dropped"}': 1.5,
    'sprout_canary_answers_total{model="champion"}': 0,
}
ROLLOUT_ROW_EXPECTED: dict[str, dict[str, float]] = {  # panel title -> its samples at 60 min: labels -> value
    "Rollout open": {"{}": 1}, "Open for": {"{}": 5400}, "Reviewed live pairs": {"{}": 40},
    "Agreement": {"{}": 0.9}, "Challenger errors": {"{}": 0.02},
    "Challenger": {'{challenger="7", champion="6", mode="shadow"}': 1},
    "Live accuracy (reviewed images)": {'{model="champion"}': 0.85, '{model="challenger"}': 0.875},
    "Live p99 latency": {'{model="champion"}': 0.04, '{model="challenger"}': 0.05},
    "Rollout images by outcome": {'{mode="shadow", outcome="agree"}': 2 * 27 / 15,
                                  '{mode="shadow", outcome="disagree"}': 2 * 3 / 15,
                                  '{mode="shadow", outcome="dropped"}': 2 * 1.5 / 15},
    "Canary answers": {'{model="champion"}': 0},
    "Rollout decisions (all time)": {
        '{outcome="aborted", decided_by_rule="true", by="rule"}': 2,
        '{outcome="aborted", decided_by_rule="false", by="person"}': 1,
        '{outcome="promoted", decided_by_rule="true", by="rule"}': 3,
        '{outcome="promoted", decided_by_rule="false", by="person"}': 0},
}


def with_labels(metric: str, labels: str) -> str:
    """``metric{a="b"}`` plus ``labels`` (a comma-separated matcher list)."""
    if "{" not in metric:
        return f"{metric}{{{labels}}}"
    return metric.replace("{", f"{{{labels}, ", 1)


@pytest.mark.root
def test_rollout_row_shows_an_open_rollout(tmp_path: Path) -> None:
    """Every query of the Rollout row on an open rollout's series (promtool evaluates them): the challenger, the
    live figures once (not once per replica), the scored images per second summed over replicas, the decisions
    named by who took them."""
    panels = row_panels("model-training", "Rollout")
    assert {p["title"] for p in panels} == set(ROLLOUT_ROW_EXPECTED)
    series = []
    for instance in (COMPOSE_TARGET, "api-2:8000"):
        labels = f'job="{API_JOB}", instance="{instance}"'
        series += [{"series": with_labels(m, labels), "values": f"{v}x240"} for m, v in ROLLOUT_GAUGES.items()]
        series += [{"series": with_labels(m, labels), "values": f"0+{v}x240"} for m, v in ROLLOUT_COUNTERS.items()]
    checks = []
    for panel in panels:
        [target] = panel["targets"]
        checks.append({"expr": expand_grafana_variables(target["expr"]), "eval_time": "60m",
                       "exp_samples": [{"labels": labels, "value": value}
                                       for labels, value in ROLLOUT_ROW_EXPECTED[panel["title"]].items()]})
    unit = {"rule_files": [], "evaluation_interval": "15s",
            "tests": [{"interval": "15s", "input_series": series, "promql_expr_test": checks}]}
    path = tmp_path / "rollout.test.yml"
    path.write_text(yaml.safe_dump(unit))
    proc = subprocess.run([require_binary(PROMTOOL), "test", "rules", path.name], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_uids_and_titles_are_unique() -> None:
    dashboards = [load_dashboard(name) for name in DASHBOARDS]
    assert len({d["uid"] for d in dashboards}) == len({d["title"] for d in dashboards}) == len(DASHBOARDS)


# --------------------------------------------------------------------------- a real Prometheus on the real API


@dataclass(frozen=True)
class Prometheus:
    url: str
    started: float  # unix time

    def query(self, expr: str) -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=30)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}\n-> {resp.status_code} {body}"
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> dict[str, Any]:
        resp = httpx.post(f"{self.url}/api/v1/query_range",
                          data={"query": expr, "start": start, "end": end, "step": step}, timeout=30)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", f"{expr}\n-> {resp.status_code} {body}"
        return body["data"]

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=30).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def last_scrape(self) -> float:
        """Unix time of the latest scrape of the API (0 before the first successful one)."""
        # timestamp() of a plain selector is the sample's (the scrape's); of `up == 1` it would be the query's own
        # evaluation time, and the wait below would end before any scrape
        up = f'up{{job="{API_JOB}"}}'
        result = self.query(f"timestamp({up}) and ({up} == 1)")["result"]
        return max((float(r["value"][1]) for r in result), default=0.0)

    def wait_for_scrape_after(self, moment: float) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.last_scrape() <= moment:
            assert time.monotonic() < deadline, f"Prometheus did not scrape the API within {WAIT_S} s"
            time.sleep(0.2)


def render_config(api_url: str, directory: Path) -> Path:
    """``monitoring/prometheus.yml`` with the live API as target, 1 s intervals and absolute rule paths."""
    config = load_yaml(PROMETHEUS_CONFIG)
    [job] = config["scrape_configs"]
    [static] = job["static_configs"]
    assert job["job_name"] == API_JOB and static["targets"] == [COMPOSE_TARGET]
    static["targets"] = [api_url.removeprefix("http://")]
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str((PROMETHEUS_CONFIG.parent / f).resolve()) for f in config["rule_files"]]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
@needs("server", "root")
def prometheus(live_api: LiveApi) -> Iterator[Prometheus]:
    """``/usr/bin/prometheus`` scraping ``live_api`` every second, on a free port; stopped afterwards."""
    binary = require_binary(PROMETHEUS)
    with tempfile.TemporaryDirectory(prefix="sprout-prometheus-") as tmp:
        directory = Path(tmp)
        config = render_config(live_api.url, directory)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = Process("prometheus", [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                                       f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                        directory / "prometheus.log", cwd=directory)
        try:
            wait_ready(proc, lambda: httpx.get(f"{url}/-/ready", timeout=2).raise_for_status(), WAIT_S,
                        "prometheus")
            prom = Prometheus(url=url, started=time.time())
            prom.wait_for_scrape_after(0)
            yield prom
        finally:
            proc.stop()


def traffic_round(api: LiveApi, first: int) -> None:
    """Predictions of both labels, an upload approved by a reviewer, a 400 and a 401, Streamlit events."""
    for label in ("dandelion", "grass"):
        for path in dataset_images(label, first + 2)[first:]:
            resp = httpx.post(f"{api.url}/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                              timeout=60)
            assert resp.status_code == 200, resp.text
    # a unique image (the API deduplicates by content, and other suites share this API)
    sample = api.submit(random_image_bytes(seed=uuid.uuid4().int % 2**32), name="monitoring.jpg")
    assert sample["status"] == "pending", sample
    resp = httpx.post(f"{api.url}/admin/samples/{sample['id']}/review", json={"action": "approve"},
                      headers=api.headers(), timeout=60)
    assert resp.status_code == 200, resp.text
    bad = httpx.post(f"{api.url}/predict", files={"file": ("x.jpg", b"not an image", "image/jpeg")}, timeout=30)
    assert bad.status_code == 400, bad.text
    assert httpx.get(f"{api.url}/admin/samples", timeout=30).status_code == 401
    for event in ({"page": "predict", "action": "view"}, {"page": "predict", "action": "predict_click"},
                  {"page": "models", "action": "view"}):
        assert httpx.post(f"{api.url}/events", json=event, timeout=30).status_code == 204


@pytest.fixture(scope="module")
def scraped(prometheus: Prometheus, live_api: LiveApi) -> Prometheus:
    """Prometheus after two rounds of traffic, each scraped, and the rules evaluated since."""
    for first in (0, 2):
        traffic_round(live_api, first)
        prometheus.wait_for_scrape_after(time.time())
    deadline = time.monotonic() + WAIT_S
    while not all(rule["health"] == "ok" for rule in prometheus.rules()):
        assert time.monotonic() < deadline, f"rules not evaluated: {prometheus.rules()}"
        time.sleep(0.2)
    return prometheus


def finite_values(data: dict[str, Any]) -> list[float]:
    """The finite sample values of an instant (vector/scalar) or range (matrix) result."""
    if data["resultType"] == "scalar":
        points = [data["result"]]
    elif data["resultType"] == "matrix":
        points = [point for series in data["result"] for point in series["values"]]
    else:
        points = [series["value"] for series in data["result"]]
    return [v for v in (float(p[1]) for p in points) if math.isfinite(v)]


def test_prometheus_scrapes_the_api(scraped: Prometheus, live_api: LiveApi) -> None:
    [up] = scraped.query(f'max_over_time(up{{job="{API_JOB}"}}[1m])')["result"]
    assert up["value"][1] == "1"
    [target] = httpx.get(f"{scraped.url}/api/v1/targets", timeout=30).json()["data"]["activeTargets"]
    assert target["scrapeUrl"] == f"{live_api.url}/metrics" and target["labels"]["job"] == API_JOB, target
    assert {r["name"] for r in scraped.rules()} == {r["alert"] for r in ALERTS}


@pytest.mark.parametrize(("name", "panel", "target"), TARGETS, ids=TARGET_IDS)
def test_dashboard_query_returns_data(scraped: Prometheus, name: str, panel: dict[str, Any],
                                      target: dict[str, Any]) -> None:
    expr = expand_grafana_variables(target["expr"])
    where = f"{name} / {panel['title']} / {target['refId']}: {expr}"
    data = scraped.query(expr)
    if not data["result"] and any(re.search(rf"\b{m}\b", expr) for m in DURING_A_ROLLOUT):
        assert scraped.query(f'max(sprout_rollout_open{{job="{API_JOB}"}}) == 0')["result"], \
            f"no data for {where}, though a rollout is open"
        return
    assert data["result"], f"no data for {where}"
    assert finite_values(data), f"only NaN/Inf for {where}: {data['result']}"
    if target.get("range"):  # Grafana asks for a range ending where the instant query was evaluated
        end = float(data["result"][0]["value"][0]) if data["resultType"] == "vector" else float(data["result"][0])
        ranged = scraped.query_range(expr, start=max(scraped.started, end - 60), end=end)
        assert ranged["result"] and finite_values(ranged), f"no range data for {where}: {ranged}"


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_expression_parses_and_evaluates(scraped: Prometheus, rule: dict[str, Any]) -> None:
    data = scraped.query(rule["expr"])
    assert data["resultType"] == "vector"
    [loaded] = [r for r in scraped.rules() if r.get("name") == rule["alert"]]
    assert loaded["health"] == "ok" and not loaded.get("lastError"), loaded


SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"')


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_selects_metrics_the_api_exposes(scraped: Prometheus, rule: dict[str, Any]) -> None:
    """A misspelt metric, label or value would make an alert silently never fire: every selector's metric
    exists, and each label it matches with ``=`` has that value on the real API."""
    selectors = SELECTOR.findall(rule["expr"])
    assert selectors, rule["expr"]
    for metric, matchers in selectors:
        for label, op, value in MATCHER.findall(matchers):
            if op == "=":
                assert scraped.query(f'{metric}{{{label}="{value}"}}')["result"], \
                    f"{rule['alert']}: no {metric} with {label}={value!r} on the API"
            else:  # the label exists on the metric
                assert scraped.query(f'{metric}{{{label}!=""}}')["result"], f"{rule['alert']}: no {label} on {metric}"
