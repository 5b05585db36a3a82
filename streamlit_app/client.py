"""The only module that speaks HTTP: every call to the Sprout API goes through here.

Reads are cached with ``st.cache_data(ttl=...)`` and take the API URL and the token as ordinary (hashed)
arguments, so a cached answer never crosses users or servers. Writes are never cached; each one clears the
reads it makes stale. Every failure — API error, refused connection, timeout — becomes one ``ApiError``
whose message is a sentence fit for ``st.error``.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

import httpx
import streamlit as st

from streamlit_app.settings import UiSettings

log = logging.getLogger("sprout.ui")


def api_url() -> str:
    """The API base URL, without a trailing slash (read on every call: cheap, and tests can change it)."""
    return UiSettings().api_url.rstrip("/")


class ApiError(Exception):
    """A failed API call; ``str(error)`` is the sentence to show, ``status`` the HTTP status (None: no answer)."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status

    @property
    def unauthorized(self) -> bool:
        return self.status == 401


@st.cache_resource(show_spinner=False)
def _http(base_url: str, timeout: float) -> httpx.Client:
    """One connection pool per API URL, shared by all sessions (httpx.Client is thread-safe)."""
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so a request never races its close.
    return httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout, connect=5.0),
                        limits=httpx.Limits(keepalive_expiry=2.0), headers={"User-Agent": "sprout-streamlit"})


def _detail(resp: httpx.Response) -> str:
    """The API's ``{"detail": ...}`` sentence, or a plain description of an unexpected answer."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:  # FastAPI's 422: a list of {"loc", "msg", ...}
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return f"The Sprout API answered {resp.status_code} {resp.reason_phrase}."


def _browser_address() -> dict[str, str]:
    """``X-Forwarded-For``: the address of the browser this script run serves (as this server's uvicorn saw it),
    so that the API throttles each browser, not the Streamlit server. The API believes it only from the addresses
    in its SPROUT_TRUSTED_PROXIES; none for a browser on this host (Streamlit gives no address then)."""
    address = st.context.ip_address
    try:
        return {"X-Forwarded-For": str(ipaddress.ip_address(address))} if isinstance(address, str) else {}
    except ValueError:
        return {}


def _request(method: str, path: str, *, token: str | None = None, base_url: str | None = None,
             timeout: float | None = None, **kwargs: Any) -> httpx.Response:
    settings = UiSettings()
    base = base_url or settings.api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= _browser_address()
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        http = _http(base, settings.api_timeout_seconds)
        try:
            resp = http.request(method, path, headers=headers, **kwargs)
        except httpx.RemoteProtocolError:  # a pooled connection the server had just closed: once more, fresh
            resp = http.request(method, path, headers=headers, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        log.warning("API unreachable at %s: %s", base, exc)
        raise ApiError(f"The Sprout API is not reachable at {base}. Is it running?") from None
    except httpx.TimeoutException:
        raise ApiError(f"The Sprout API at {base} did not answer in time; try again shortly.") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise ApiError(f"SPROUT_API_URL is not a usable http(s) URL: {base!r}.") from None
    except httpx.HTTPError as exc:
        log.warning("API call %s %s failed: %r", method, path, exc)
        raise ApiError(f"The connection to the Sprout API at {base} failed; try again shortly.") from None
    if resp.is_error:
        raise ApiError(_detail(resp), status=resp.status_code)
    return resp


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ApiError("The Sprout API sent an answer that is not JSON.", status=resp.status_code) from None


# --- reads (cached) ---

@st.cache_data(ttl=30, show_spinner=False)
def _read_models(base_url: str) -> dict[str, Any]:
    return _json(_request("GET", "/models", base_url=base_url))


def read_models() -> dict[str, Any]:
    """``GET /models``: champion, registered versions with metrics, training runs with gate decisions."""
    return _read_models(api_url())


@st.cache_data(ttl=10, show_spinner=False)
def _read_stats(base_url: str, token: str) -> dict[str, Any]:
    return _json(_request("GET", "/admin/stats", token=token, base_url=base_url))


def read_stats(token: str) -> dict[str, Any]:
    """``GET /admin/stats``: queue size, approvals since the last training run, per-label counts."""
    return _read_stats(api_url(), token)


@st.cache_data(ttl=10, show_spinner=False)
def _read_samples(base_url: str, token: str, status: str, order: str, limit: int, offset: int) -> dict[str, Any]:
    params = {"status": status, "order": order, "limit": limit, "offset": offset}
    return _json(_request("GET", "/admin/samples", token=token, base_url=base_url, params=params))


def read_samples(token: str, *, status: str = "pending", order: str = "uncertainty", limit: int = 20,
                 offset: int = 0) -> dict[str, Any]:
    """``GET /admin/samples``: ``{data, count}``; by default the pending queue, least confident first."""
    return _read_samples(api_url(), token, status, order, limit, offset)


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def _read_sample_image(base_url: str, token: str, sample_id: int) -> bytes:
    return _request("GET", f"/admin/samples/{sample_id}/image", token=token, base_url=base_url).content


def read_sample_image(token: str, sample_id: int) -> bytes:
    """``GET /admin/samples/{id}/image``: the stored bytes (a sample's image never changes)."""
    return _read_sample_image(api_url(), token, sample_id)


def clear_review_reads() -> None:
    """Forget the cached queue and stats (the reviewer asked for fresh data)."""
    _read_samples.clear()
    _read_stats.clear()


# --- writes (never cached) ---

def predict(name: str, data: bytes, content_type: str | None) -> dict[str, Any]:
    """``POST /predict``: ``{label, confidence, probabilities, model_version}``."""
    files = {"file": (name, data, content_type or "application/octet-stream")}
    return _json(_request("POST", "/predict", files=files))


def submit_sample(name: str, data: bytes, content_type: str | None, *,
                  label: str | None = None, token: str | None = None) -> tuple[dict[str, Any], bool]:
    """``POST /samples``: (the stored sample, True when new; False: an exact duplicate, ``id``/``status`` null).
    With a reviewer's ``token`` the receipt also names the existing sample and the near-duplicates."""
    files = {"file": (name, data, content_type or "application/octet-stream")}
    form = {"label": label} if label else {}
    resp = _request("POST", "/samples", files=files, data=form, token=token)
    _read_samples.clear()
    _read_stats.clear()
    return _json(resp), resp.status_code == 201


def log_in(username: str, password: str) -> dict[str, Any]:
    """``POST /auth/token``: ``{access_token, token_type, expires_in, username, is_admin}``."""
    return _json(_request("POST", "/auth/token", data={"username": username, "password": password}))


def read_me(token: str) -> dict[str, Any]:
    """``GET /auth/me``: ``{username, is_admin, expires_in}`` of a token the API still honours."""
    return _json(_request("GET", "/auth/me", token=token))


def log_out(token: str) -> None:
    """``POST /auth/logout``: the API revokes the token (it refuses it from now on)."""
    _request("POST", "/auth/logout", token=token)


def review_sample(token: str, sample_id: int, *, action: str, label: str | None = None) -> dict[str, Any]:
    """``POST /admin/samples/{id}/review``: approve (optionally with a corrected label) or reject."""
    body = {"action": action, "label": label}
    sample = _json(_request("POST", f"/admin/samples/{sample_id}/review", token=token, json=body))
    _read_samples.clear()
    _read_stats.clear()
    return sample


def read_label_issues(token: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """``GET /admin/label-issues``: approved samples whose label is probably wrong, most suspect first."""
    return list(_json(_request("GET", "/admin/label-issues", token=token, params={"limit": limit}))["issues"])


def relabel_sample(token: str, sample_id: int, *, label: str | None) -> dict[str, Any]:
    """``POST /admin/samples/{id}/relabel`` (admins): a new label, or ``None`` to send it back to the queue."""
    sample = _json(_request("POST", f"/admin/samples/{sample_id}/relabel", token=token, json={"label": label}))
    _read_samples.clear()
    _read_stats.clear()
    return sample


def promote(token: str, version: str) -> dict[str, Any]:
    """``POST /admin/models/{version}/promote``: ``{previous, champion}`` (a rollback is a promotion)."""
    result = _json(_request("POST", f"/admin/models/{version}/promote", token=token))
    _read_models.clear()
    _read_stats.clear()
    return result


@st.cache_data(ttl=5, show_spinner=False)  # under the Rollout section's refresh (10 s)
def _read_rollouts(base_url: str) -> dict[str, Any]:
    return _json(_request("GET", "/rollouts", base_url=base_url))


def read_rollouts(*, fresh: bool = False) -> dict[str, Any]:
    """``GET /rollouts`` (public): ``{challenger, rollouts}``, the latest rollouts newest first, each with its live
    comparison (``evidence``, ``summary``) and, while open, what the rule would do now (``decision``). ``fresh``:
    not from this server's cache."""
    if fresh:
        _read_rollouts.clear()
    return _read_rollouts(api_url())


def start_rollout(token: str, version: str, *, mode: str = "shadow") -> dict[str, Any]:
    """``POST /admin/rollouts`` (admins): ``version`` becomes the challenger in ``mode`` (shadow or canary)."""
    rollout = _json(_request("POST", "/admin/rollouts", token=token, json={"version": version, "mode": mode}))
    _read_rollouts.clear()
    _read_models.clear()
    return rollout


def decide_rollout(token: str, action: str, *, rollout_id: int, reason: str | None = None) -> dict[str, Any]:
    """``POST /admin/rollouts/current/{promote|abort}`` (admins): end the open rollout now, overriding the rule —
    only if it is still ``rollout_id`` (the one shown; the API answers 409 otherwise)."""
    rollout = _json(_request("POST", f"/admin/rollouts/current/{action}", token=token,
                             json={"reason": reason, "rollout_id": rollout_id}))
    _read_rollouts.clear()
    _read_models.clear()
    _read_stats.clear()
    return rollout


@st.cache_data(ttl=4, show_spinner=False)  # under the Retrain table's refresh (5 s)
def _read_retrain_runs(base_url: str, token: str) -> dict[str, Any]:
    return _json(_request("GET", "/admin/retrain", token=token, base_url=base_url))


def read_retrain_runs(token: str) -> dict[str, Any]:
    """``GET /admin/retrain``: the retrain DAG's latest runs in Airflow."""
    return _read_retrain_runs(api_url(), token)


def trigger_retrain(token: str, *, force: bool = False) -> dict[str, Any]:
    """``POST /admin/retrain``: start the retrain DAG now; ``{dag_run_id, state, ...}``."""
    run = _json(_request("POST", "/admin/retrain", token=token, json={"force": force}))
    _read_retrain_runs.clear()
    return run


@st.cache_data(ttl=10, show_spinner=False)
def _read_labels(base_url: str, token: str) -> dict[str, Any]:
    return _json(_request("GET", "/admin/labels", token=token, base_url=base_url))


def read_labels(token: str) -> dict[str, Any]:
    """``GET /admin/labels``: the labels with their counts and the latest taxonomy changes."""
    return _read_labels(api_url(), token)


def change_label(token: str, label: str, *, kind: str, target: str | None = None) -> dict[str, Any]:
    """``POST /admin/labels/{label}/{rename|merge|retire}`` (admins): the recorded change and its retrain."""
    body = {"rename": {"to": target}, "merge": {"into": target}}.get(kind)
    change = _json(_request("POST", f"/admin/labels/{label}/{kind}", token=token, json=body, timeout=120.0))
    for read in (_read_labels, _read_samples, _read_stats, _read_models, _read_retrain_runs):
        read.clear()
    return change


def send_event(page: str, action: str) -> None:
    """``POST /events`` (usage metrics). Best effort: a failure is logged and otherwise ignored."""
    try:
        _request("POST", "/events", json={"page": page, "action": action}, timeout=2.0)
    except ApiError as exc:
        log.info("usage event %s/%s not recorded: %s", page, action, exc)


def undo_review(token: str, sample_id: int) -> dict[str, Any]:
    """``POST /admin/samples/{id}/undo``: take back your own latest decision (within the undo window)."""
    sample = _json(_request("POST", f"/admin/samples/{sample_id}/undo", token=token))
    _read_samples.clear()
    _read_stats.clear()
    return sample


def read_recent_reviews(token: str, *, limit: int = 10) -> dict[str, Any]:
    """``GET /admin/reviews/recent`` (never cached): ``{reviews: [...], undo_seconds}``, your own decisions,
    newest first, each with ``undoable`` and ``undoable_until``."""
    return dict(_json(_request("GET", "/admin/reviews/recent", token=token, params={"limit": limit})))
