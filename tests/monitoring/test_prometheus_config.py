"""``monitoring/prometheus.yml`` and the alert rules: ``promtool check config``, ``check rules``, ``test rules``.

``sprout.rules.test.yml`` must cover every alert with a firing and a not-firing case; a few mutated copies of
the rules prove that those unit tests notice a wrong threshold or filter.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.files import (
    API_JOB,
    COMPOSE_TARGET,
    PROMETHEUS_CONFIG,
    PROMTOOL,
    RULES,
    RULES_TEST,
    alert_rules,
    load_yaml,
    require_binary,
)

# The alerts the monitoring issue asks for (API down, 5xx rate, p99 latency, model age, gate failed, pending
# queue growing), plus "no model served" and "training run failed"; drift of live traffic and its confidence.
EXPECTED_ALERTS = {
    "SproutApiDown", "SproutApiHighErrorRate", "SproutApiHighLatency", "SproutNoModelServed", "SproutModelStale",
    "SproutGateFailed", "SproutTrainingRunFailed", "SproutPendingQueueGrowing", "SproutModelArtifactRejected",
    "SproutTrafficDrift", "SproutConfidenceDrop",
    # a challenger on live traffic (issue 25): aborted, failing, its scoring queue dropping, never decided
    "SproutRolloutAborted", "SproutChallengerErrors", "SproutShadowDropped", "SproutRolloutStuck",
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary(PROMTOOL), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.root
def test_promtool_check_config_accepts_prometheus_yml_and_its_rules() -> None:
    proc = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "is valid prometheus config file syntax" in out and "1 rule files found" in out, out
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in out, out


def test_prometheus_yml_scrapes_the_api_at_its_compose_address() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    [job] = config["scrape_configs"]
    assert job["job_name"] == API_JOB and job.get("metrics_path", "/metrics") == "/metrics"
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [COMPOSE_TARGET]
    assert [(PROMETHEUS_CONFIG.parent / f).resolve() for f in config["rule_files"]] == [RULES.resolve()]
    text = PROMETHEUS_CONFIG.read_text()
    assert "POST /events" in text and "sprout_ui_page_views_total" in text and "sprout_training_runs_total" in text


@pytest.mark.root
def test_promtool_check_rules() -> None:
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in proc.stdout, proc.stdout


def test_every_alert_is_labelled_and_explained() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    assert len(rules) == len(EXPECTED_ALERTS), "an alert name is used twice"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert f'job="{API_JOB}"' in rule["expr"], f"{rule['alert']} must select the API's scrape job"


def test_rule_unit_tests_cover_every_alert_firing_and_not_firing() -> None:
    spec = load_yaml(RULES_TEST)
    assert spec["rule_files"] == [RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing | quiet <= EXPECTED_ALERTS, f"tests for unknown alerts: {(firing | quiet) - EXPECTED_ALERTS}"
    assert EXPECTED_ALERTS - firing == set(), f"alerts never tested firing: {EXPECTED_ALERTS - firing}"
    assert EXPECTED_ALERTS - quiet == set(), f"alerts never tested quiet: {EXPECTED_ALERTS - quiet}"


@pytest.mark.root
def test_promtool_test_rules_passes() -> None:
    proc = promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


@pytest.mark.root
@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        # /metrics answers would count as user requests
        ("SproutApiHighErrorRate", 'route!="/metrics", status=~"5.."', 'status=~"5.."'),
        ("SproutModelStale", "> 14 * 86400", "> 15 * 86400"),
        # the two halves of the expression would become two alerts
        ("SproutGateFailed", "max without (instance, outcome) (increase", "max without (instance) (increase"),
        ("SproutPendingQueueGrowing", 'status="pending"}) > 50', 'status="pending"}) > 0'),
        # confidence drops over too few predictions would page
        ("SproutConfidenceDrop", '(sprout_drift_window_size{job="sprout-api"}) >= 30',
         '(sprout_drift_window_size{job="sprout-api"}) >= 0'),
        ("SproutConfidenceDrop", ") > 0.10", ") > 0.05"),
        # an abort would page for two hours; dropped images would dilute the challenger's error rate
        ("SproutRolloutAborted", 'outcome="aborted"}[1h]', 'outcome="aborted"}[2h]'),
        ("SproutChallengerErrors", 'mode="shadow", outcome!="dropped"', 'mode="shadow"'),
        # the alert would no longer name the replica that drops
        ("SproutShadowDropped", 'sum by (instance) (rate(sprout_rollout_scored_total{job="sprout-api", outcome="drop',
         'sum(rate(sprout_rollout_scored_total{job="sprout-api", outcome="drop'),
        ("SproutRolloutStuck", "> 8 * 86400", "> 7 * 86400"),
    ],
    ids=["5xx-filter", "model-age", "gate-labels", "queue-size", "drift-min-predictions", "confidence-drop",
         "rollout-aborted-window", "challenger-errors-dropped", "shadow-dropped-instance", "rollout-age"],
)
def test_promtool_test_rules_catches_a_mutated_rule(tmp_path: Path, alert: str, old: str, new: str) -> None:
    """The unit tests of ``alert`` (only those, to keep it quick) fail against a rules file with one change."""
    text = RULES.read_text()
    assert text.count(old) == 1, f"{old!r} not found exactly once in {RULES.name}"
    spec = load_yaml(RULES_TEST)
    spec["tests"] = [case for case in spec["tests"]
                     if any(check["alertname"] == alert for check in case.get("alert_rule_test", []))]
    assert spec["tests"]
    results = {}
    for variant, rules in (("original", text), ("mutated", text.replace(old, new))):
        (tmp_path / variant).mkdir()
        (tmp_path / variant / RULES.name).write_text(rules)
        (tmp_path / variant / RULES_TEST.name).write_text(yaml.safe_dump(spec))
        results[variant] = promtool("test", "rules", RULES_TEST.name, cwd=tmp_path / variant)
    assert results["original"].returncode == 0, results["original"].stdout + results["original"].stderr
    out = results["mutated"].stdout + results["mutated"].stderr
    assert results["mutated"].returncode != 0, f"the rule unit tests did not notice {old!r} -> {new!r}:\n{out}"
    assert "FAILED" in out and alert in out, out
