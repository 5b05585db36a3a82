"""Upload limits: refuse oversized bodies before they are parsed, and read files with a cap."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import UploadFile

from model.core.errors import ImageTooLargeError, InvalidImageError

MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for request bodies over the limit, by Content-Length or while streaming (chunked uploads)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(scope, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: MutableMapping[str, Any], send: Callable[[Any], Awaitable[None]]) -> None:
        mb = (self.max_bytes - MULTIPART_OVERHEAD) / 1024 / 1024
        key = "error" if str(scope.get("path", "")).startswith("/v2/") else "detail"  # the inference protocol's
        body = json.dumps({key: f"The upload is larger than the {mb:g} MB limit."}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded file's bytes (sync: call from a worker thread); 413 over the limit, 400 when empty."""
    data = file.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"The upload is larger than the {max_bytes / 1024 / 1024:g} MB limit.")
    if not data:
        raise InvalidImageError("The file is empty.")
    return data
