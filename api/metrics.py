"""Prometheus metrics of the API (``sprout_<area>_<name>_<unit>``) and the middleware that records them."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api.schemas import UiPage
from model.monitoring.telemetry import training_snapshot

if TYPE_CHECKING:
    from model.monitoring.drift import DriftMonitor
    from model.rollout.monitor import RolloutMonitor
    from model.runtime.services import Services
    from model.runtime.traffic import PredictionRecorder
    from model.serving.predictor import PredictionResult

REQUESTS = Counter("sprout_api_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "sprout_api_request_duration_seconds", "HTTP request latency", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter("sprout_predictions_total", "Predictions served, by predicted label", ["label"])
CONFIDENCE = Histogram("sprout_prediction_confidence", "Confidence of served predictions",
                       buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
MODEL_VERSION = Gauge("sprout_model_version", "Registry version of the model being served (0: none)")
MODEL_INFO = Gauge("sprout_model_info", "1 for the registry version being served", ["version"])
CAPTURES = Counter("sprout_captures_total",
                   "Low-confidence predictions offered to capture, by outcome (stored, duplicate, capped, queue_full, "
                   "dropped, refused, error)", ["result"])
DOUBTS = Counter("sprout_prediction_doubts_total",
                 "Served predictions the model was not sure of (abstained) or called unfamiliar", ["kind"])
UPLOADS = Counter("sprout_uploads_total", "Images submitted for review", ["result"])
REVIEWS = Counter("sprout_reviews_total", "Review decisions", ["action"])
UI_PAGE_VIEWS = Counter("sprout_ui_page_views_total", "Streamlit page views (once per session and page)", ["page"])
UI_PREDICT_CLICKS = Counter("sprout_ui_predict_clicks_total", "Predictions requested from the Streamlit page")
MODEL_REJECTED = Counter("sprout_model_artifact_rejections_total",
                         "Champion versions the API refused to serve (artifact not Sprout's, or sha256 mismatch)")
ROLLOUT_SCORED = Counter("sprout_rollout_scored_total",
                         "Images the other model scored off the request path during a rollout, by mode (shadow: the "
                         "challenger; canary: the champion) and outcome (agree, disagree, error, dropped)",
                         ["mode", "outcome"])
CANARY_ANSWERS = Counter("sprout_canary_answers_total", "Predictions answered during a canary rollout, by model "
                         "(champion, challenger)", ["model"])
UNHANDLED_ERRORS = Counter("sprout_api_unhandled_errors_total", "Requests that failed with an unexpected error")
UNMEASURED_ROUTES = {"/metrics"}

# Series that exist from the start, so rate() and increase() see their first event.
for _result in ("created", "duplicate"):
    UPLOADS.labels(_result)
for _action in ("approve", "correct", "reject", "relabel", "unapprove", "undo"):
    REVIEWS.labels(_action)
for _page in UiPage:
    UI_PAGE_VIEWS.labels(_page.value)
for _kind in ("abstained", "unfamiliar"):
    DOUBTS.labels(_kind)
for _mode in ("shadow", "canary"):
    for _outcome in ("agree", "disagree", "error", "dropped"):
        ROLLOUT_SCORED.labels(_mode, _outcome)
for _model in ("champion", "challenger"):
    CANARY_ANSWERS.labels(_model)


def observe_prediction(result: PredictionResult) -> None:
    """Count a served prediction by label (and whether it abstained or was unfamiliar) and observe its confidence;
    a non-finite confidence is not observed (it would make the histogram's sum NaN for the life of the process)."""
    PREDICTIONS.labels(result.label).inc()
    if result.abstained:
        DOUBTS.labels("abstained").inc()
    if result.unfamiliar:
        DOUBTS.labels("unfamiliar").inc()
    if math.isfinite(result.confidence):
        CONFIDENCE.observe(result.confidence)


def observe_served_model(version: str | None, labels: list[str]) -> None:
    """Export which model is served, and start a prediction series for each of its labels."""
    MODEL_VERSION.set(float(version) if version and version.isdigit() else 0)
    MODEL_INFO.clear()
    if version:
        MODEL_INFO.labels(version).set(1)
    for label in labels:
        PREDICTIONS.labels(label)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class MetricsMiddleware:
    """Pure ASGI middleware: counts requests by route template, method and status; times them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template not in UNMEASURED_ROUTES:
                method = scope.get("method", "")
                REQUESTS.labels(template, method, str(status["code"])).inc()
                LATENCY.labels(template, method).observe(time.perf_counter() - start)


class TrainingCollector(Collector):
    """Training and data metrics read from the database at scrape time (nothing when it is down)."""

    def __init__(self) -> None:
        self.services: Services | None = None

    def collect(self) -> Any:
        if self.services is None:
            return
        try:
            snap = training_snapshot(self.services)
        except Exception:  # a scrape must not fail because the database is down
            yield GaugeMetricFamily("sprout_database_up", "1 if the API could read the database", value=0.0)
            return
        yield GaugeMetricFamily("sprout_database_up", "1 if the API could read the database", value=1.0)
        yield GaugeMetricFamily("sprout_training_min_new_samples", "Approved samples needed to retrain",
                                value=self.services.settings.min_new_samples)
        samples = GaugeMetricFamily("sprout_samples", "Samples by review status", labels=["status"])
        for status, n in snap.samples.items():
            samples.add_metric([status], n)
        yield samples
        yield GaugeMetricFamily("sprout_samples_approved_since_last_run",
                                "Approved samples the last training run did not use",
                                value=snap.approved_since_last_run)
        runs = CounterMetricFamily("sprout_training_runs", "Training runs by outcome", labels=["outcome"])
        for outcome, n in snap.runs.items():
            runs.add_metric([outcome], n)
        yield runs
        if snap.last_gate_passed is not None:
            yield GaugeMetricFamily("sprout_training_last_gate_passed", "1 if the latest run passed the gate",
                                    value=1.0 if snap.last_gate_passed else 0.0)
        accuracy = GaugeMetricFamily("sprout_model_test_accuracy", "Test accuracy of each registered version",
                                     labels=["version"])
        for version, acc in snap.accuracy_by_version.items():
            if acc is not None:
                accuracy.add_metric([version], acc)
        yield accuracy
        if snap.last_promotion_age_seconds is not None:
            yield GaugeMetricFamily("sprout_model_last_promotion_age_seconds",
                                    "Seconds since a model was last promoted",
                                    value=snap.last_promotion_age_seconds)


TRAINING = TrainingCollector()
REGISTRY.register(TRAINING)


class DriftCollector(Collector):
    """Drift of live traffic: the drift monitor's latest report (refreshed off the request path, never at
    scrape time) and the window writer's counters."""

    def __init__(self) -> None:
        self.recorder: PredictionRecorder | None = None
        self.monitor: DriftMonitor | None = None

    def collect(self) -> Any:
        if self.recorder is not None:
            yield CounterMetricFamily("sprout_drift_window_recorded", "Predictions written to the drift window",
                                      value=self.recorder.written)
            yield CounterMetricFamily("sprout_drift_window_dropped",
                                      "Predictions not recorded (buffer full, database unavailable, or not finite)",
                                      value=self.recorder.dropped)
        report = self.monitor.latest if self.monitor is not None else None
        if report is None:
            return
        yield GaugeMetricFamily("sprout_drift_window_size", "Recent predictions of the champion in the drift window",
                                value=report.n)
        yield GaugeMetricFamily("sprout_drift_detected", "1 if live traffic drifted from the champion's training set",
                                value=1.0 if report.drifted else 0.0)
        optional = (
            ("sprout_drift_score", "Drift score of the window (MMD² or domain-classifier AUC)", report.drift_score),
            ("sprout_drift_threshold", "Drift score above which traffic has drifted", report.threshold),
            ("sprout_live_mean_confidence", "Mean calibrated confidence of the window's predictions",
             report.mean_confidence),
            ("sprout_reference_mean_confidence", "Mean confidence of the champion on its test split",
             report.reference_mean_confidence),
            ("sprout_novel_share", "Share of the window's images unlike any training image", report.novel_share),
        )
        for name, doc, value in optional:
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)


DRIFT = DriftCollector()
REGISTRY.register(DRIFT)


class RolloutCollector(Collector):
    """The open rollout's live evidence and the decisions taken so far: the rollout monitor's latest snapshot
    (refreshed off the request path, never at scrape time). A figure without data (no reviewed pair, no
    latency) is left out rather than exported as NaN."""

    def __init__(self) -> None:
        self.monitor: RolloutMonitor | None = None

    def collect(self) -> Any:
        snap = self.monitor.latest if self.monitor is not None else None
        if snap is None:
            return
        yield GaugeMetricFamily("sprout_rollout_open", "1 while a challenger is in a rollout (shadow or canary)",
                                value=1.0 if snap.open else 0.0)
        yield GaugeMetricFamily("sprout_rollout_age_seconds", "Seconds the open rollout has run (0: none is open)",
                                value=snap.age_seconds())
        decisions = GaugeMetricFamily("sprout_rollout_decisions",
                                      "Ended rollouts by outcome and whether the rule decided (else a person)",
                                      labels=["outcome", "decided_by_rule"])
        for outcome in ("promoted", "aborted"):
            for by_rule in (True, False):
                count = sum(n for (o, rule), n in snap.decisions.items() if o.value == outcome and rule == by_rule)
                decisions.add_metric([outcome, str(by_rule).lower()], count)
        yield decisions
        if not snap.open or snap.evidence is None or snap.mode is None:
            return
        info = GaugeMetricFamily("sprout_rollout_info", "1 for the open rollout's challenger, champion and mode",
                                 labels=["challenger", "champion", "mode"])
        info.add_metric([snap.challenger or "", snap.champion or "", snap.mode.value], 1.0)
        yield info
        ev = snap.evidence
        yield GaugeMetricFamily("sprout_rollout_reviewed_pairs",
                                "Reviewed live images both models answered (the paired comparison)", value=ev.reviewed)
        yield GaugeMetricFamily("sprout_rollout_observations", "Live images both models scored in this rollout",
                                value=ev.shadowed)
        accuracy = GaugeMetricFamily("sprout_rollout_live_accuracy", "Accuracy on reviewed live images, by model",
                                     labels=["model"])
        p99 = GaugeMetricFamily("sprout_rollout_p99_seconds", "p99 latency on live images, by model",
                                labels=["model"])
        for model, acc, ms in (("champion", ev.champion_accuracy, ev.champion_p99_ms),
                               ("challenger", ev.challenger_accuracy, ev.challenger_p99_ms)):
            if acc is not None:
                accuracy.add_metric([model], acc)
            if ms is not None:
                p99.add_metric([model], ms / 1000)
        yield accuracy
        yield p99
        for name, doc, value in (
                ("sprout_rollout_agreement", "Share of live images the challenger labelled as the champion did",
                 ev.agreement),
                ("sprout_rollout_challenger_error_rate", "Share of live images the challenger failed on",
                 ev.challenger_error_rate)):
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=value)


ROLLOUT = RolloutCollector()
REGISTRY.register(ROLLOUT)
