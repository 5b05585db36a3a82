"""A webhook endpoint on 127.0.0.1 for tests: records every request and answers statuses on demand; events verify
with the ``standardwebhooks`` package, as a team's own tool would."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Receiver:
    """A webhook endpoint: records each request and answers the next status of ``answers`` (then 200)."""

    url: str
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def events(self, secret: str = SECRET) -> list[dict[str, Any]]:
        """Every event received, each verified with ``secret`` (raises WebhookVerificationError otherwise)."""
        hook = Webhook(secret)
        return [dict(hook.verify(body, headers)) for body, headers in self.received]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    rec = Receiver(url=f"http://127.0.0.1:{server.server_port}/hooks/sprout-team-token")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["content-length"]))
            rec.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            time.sleep(rec.delay)
            self.send_response(rec.answers.pop(0) if rec.answers else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
