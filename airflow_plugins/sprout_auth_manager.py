"""Airflow's simple auth manager with one narrow kind of user more: a *trigger user*, the login of Sprout's API.

Airflow imports this module from its plugins folder (on the ``sys.path`` of every Airflow component; not a plugin,
so listed in ``.airflowignore``) once it is configured as the auth manager::

    AIRFLOW__CORE__AUTH_MANAGER=sprout_auth_manager.SproutAuthManager
    AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,sprout:viewer
    AIRFLOW__SPROUT__TRIGGER_USERS=sprout

The simple auth manager's roles cannot say what the API needs: ``user`` may also pause, clear and delete every
DAG but cannot record an asset event, which takes ``op`` (also connections, variables, pools). A trigger user
(give it the role ``viewer``) reads what a viewer reads and may do exactly two things more, each checked against
the request being served:

- start a run of a Sprout DAG (id ``sprout_...``): ``POST /api/v2/dags/{dag_id}/dagRuns`` (no backfills);
- record an event on an asset that only Sprout DAGs are scheduled on: ``POST /api/v2/assets/events``.

Every other decision, and every other user, is the simple auth manager's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.auth.managers.models.resource_details import AssetDetails, DagAccessEntity, DagDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.configuration import conf
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

SPROUT_DAG_PREFIX = "sprout_"
TRIGGER_PATH = re.compile(r".*/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns")
EVENTS_PATH = re.compile(r".*/api/v2/assets/events")
# The most of an asset event's body the middleware reads, before anyone is authenticated: Sprout's API sends
# {"asset_id": N, "extra": {"new_approved": N}}, some 50 bytes; a larger body is refused (413), never buffered.
MAX_EVENT_BODY = 16 * 1024


@dataclass(frozen=True)
class ApiCall:
    """The request being authorized: method, path and, for an asset event, the asset id its body names."""

    method: str
    path: str
    event_asset_id: int | None = None

    def triggers(self, dag_id: str | None) -> bool:
        """Whether this request is the trigger route of that DAG (not a backfill, a clear, a materialization)."""
        match = TRIGGER_PATH.fullmatch(self.path)
        return self.method == "POST" and match is not None and match["dag_id"] == dag_id

    @property
    def posts_event(self) -> bool:
        return self.method == "POST" and EVENTS_PATH.fullmatch(self.path) is not None


_current_call: ContextVar[ApiCall | None] = ContextVar("sprout_api_call", default=None)


def current_call() -> ApiCall | None:
    """The request being served (set by :class:`ApiCallMiddleware`), or None outside a request."""
    return _current_call.get()


@contextmanager
def serving(call: ApiCall | None) -> Iterator[None]:
    """Decisions made inside are about ``call``."""
    token = _current_call.set(call)
    try:
        yield
    finally:
        _current_call.reset(token)


def is_sprout_dag(dag_id: str | None) -> bool:
    return bool(dag_id) and str(dag_id).startswith(SPROUT_DAG_PREFIX)


def asset_consumers(asset_id: int) -> set[str]:
    """The ids of the DAGs scheduled on the asset (none for an unknown asset)."""
    from airflow.models.asset import DagScheduleAssetReference
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.scalars(select(DagScheduleAssetReference.dag_id)
                                   .where(DagScheduleAssetReference.asset_id == asset_id)))


def event_asset_id(body: bytes) -> int | None:
    """The asset id of a ``POST /api/v2/assets/events`` body, parsed as the route parses it (None if invalid)."""
    from airflow.api_fastapi.core_api.datamodels.assets import CreateAssetEventsBody

    try:
        return CreateAssetEventsBody.model_validate(json.loads(body)).asset_id
    except (ValueError, RecursionError):  # bad or too deeply nested JSON, a body the route refuses (pydantic)
        return None


class ApiCallMiddleware:
    """Records each HTTP request (method, path; an asset event's asset id from its body) for the auth manager,
    which Airflow asks about resources only. The body of an asset event is read here and handed on unchanged, or
    refused with 413 once it passes ``MAX_EVENT_BODY`` bytes (the rest is left unread)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call = ApiCall(method=scope["method"], path=scope["path"])
        if call.posts_event:
            messages = await _read_body(receive, MAX_EVENT_BODY)
            if messages is None:
                too_large = JSONResponse({"detail": f"An asset event's body is limited to {MAX_EVENT_BODY} bytes"},
                                         status_code=413)
                await too_large(scope, receive, send)
                return
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            call = ApiCall(call.method, call.path, event_asset_id(body))
            receive = _replay(messages, receive)
        with serving(call):
            await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> list[Message] | None:
    """The request's messages up to the end of its body (or a disconnect); None, and no more read, once the body
    passes ``limit`` bytes."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class SproutAuthManager(SimpleAuthManager):
    """The simple auth manager, plus the trigger users of ``[sprout] trigger_users`` (comma-separated)."""

    @cached_property
    def trigger_users(self) -> frozenset[str]:
        names = conf.get("sprout", "trigger_users", fallback="")
        return frozenset(name.strip() for name in names.split(",") if name.strip())

    def _is_trigger_user(self, user: SimpleAuthManagerUser) -> bool:
        return user.username in self.trigger_users

    def get_fastapi_middlewares(self) -> list[tuple[Any, dict[str, Any]]]:
        return [*super().get_fastapi_middlewares(), (ApiCallMiddleware, {})]

    def is_authorized_dag(self, *, method: ResourceMethod, user: SimpleAuthManagerUser,
                          access_entity: DagAccessEntity | None = None, details: DagDetails | None = None) -> bool:
        if super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details):
            return True
        dag_id = details.id if details else None
        call = current_call()
        return (self._is_trigger_user(user) and method == "POST" and access_entity == DagAccessEntity.RUN
                and is_sprout_dag(dag_id) and call is not None and call.triggers(dag_id))

    def is_authorized_asset(self, *, method: ResourceMethod, user: SimpleAuthManagerUser,
                            details: AssetDetails | None = None) -> bool:
        if super().is_authorized_asset(method=method, user=user, details=details):
            return True
        call = current_call()
        if not (self._is_trigger_user(user) and method == "POST" and call is not None and call.posts_event
                and call.event_asset_id is not None):
            return False
        consumers = asset_consumers(call.event_asset_id)
        return bool(consumers) and all(is_sprout_dag(dag_id) for dag_id in consumers)
