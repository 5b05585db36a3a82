"""Prometheus metrics of the API (``sprout_<area>_<name>_<unit>``) and the middleware that records them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("sprout_api_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "sprout_api_request_duration_seconds", "HTTP request latency", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter("sprout_predictions_total", "Predictions served, by predicted label", ["label"])
CONFIDENCE = Histogram("sprout_prediction_confidence", "Confidence of served predictions",
                       buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0))
MODEL_VERSION = Gauge("sprout_model_version", "Registry version of the model being served (0: none)")
UPLOADS = Counter("sprout_uploads_total", "Images submitted for review", ["result"])
REVIEWS = Counter("sprout_reviews_total", "Review decisions", ["action"])
PENDING = Gauge("sprout_pending_samples", "Samples waiting for review")
UI_PAGE_VIEWS = Counter("sprout_ui_page_views_total", "Streamlit page views (once per session and page)", ["page"])
UI_PREDICT_CLICKS = Counter("sprout_ui_predict_clicks_total", "Predictions requested from the Streamlit page")
UNHANDLED_ERRORS = Counter("sprout_api_unhandled_errors_total", "Requests that failed with an unexpected error")

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
            method = scope.get("method", "")
            REQUESTS.labels(template, method, str(status["code"])).inc()
            LATENCY.labels(template, method).observe(time.perf_counter() - start)
