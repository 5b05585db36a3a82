"""`make up` on a shared machine: another account may listen on a loopback port first and answer like MLflow; the
admin's login must never reach it, nor appear on a command line (`ps` shows every account's)."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import servers
from tests.utils.paths import REPO_ROOT

BIN = str(REPO_ROOT / ".venv" / "bin")


class Squatter(BaseHTTPRequestHandler):
    """Answers 200 to everything, like a health check wants, and keeps every Authorization header it is sent."""

    logins: list[str] = []

    def _answer(self) -> None:
        if "Authorization" in self.headers:
            Squatter.logins.append(self.headers["Authorization"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def squatter() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Squatter)
    Squatter.logins = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.server  # scripts/up.sh starts the stack unless the port check stops it
def test_make_up_refuses_a_port_another_program_holds_and_sends_it_no_login(squatter: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPROUT_", "MLFLOW_", "AIRFLOW_"))} | {
        "SPROUT_HOME": str(tmp_path / "home"), "SPROUT_MLFLOW_PORT": str(squatter),
        **{f"SPROUT_{name}_PORT": str(servers.free_port()) for name in ("API", "UI", "AIRFLOW")}}
    up = subprocess.run([str(REPO_ROOT / "scripts" / "up.sh")], cwd=REPO_ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
    subprocess.run([str(REPO_ROOT / "scripts" / "down.sh")], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)
    assert up.returncode != 0 and f"Port {squatter} (for mlflow) is already in use" in up.stderr, up.stderr
    assert Squatter.logins == []


def test_the_mlflow_login_goes_to_curl_on_stdin_not_on_its_command_line(tmp_path: Path) -> None:
    fake = tmp_path / "curl"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\ncat > "$STDIN_FILE"\n')
    fake.chmod(0o755)
    script = ('. scripts/ports.sh; . scripts/mlflow-auth.sh; MLFLOW_ADMIN_USERNAME=admin '
              'MLFLOW_ADMIN_PASSWORD=the-admins-secret-42; mlflow_login_works http://127.0.0.1:9/x')
    subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, check=True, timeout=30, env={
        **os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "BIN": BIN,
        "ARGS_FILE": str(tmp_path / "args"), "STDIN_FILE": str(tmp_path / "stdin")})
    assert "the-admins-secret-42" not in (tmp_path / "args").read_text()
    login = base64.b64encode(b"admin:the-admins-secret-42").decode()
    assert f"Authorization: Basic {login}" in (tmp_path / "stdin").read_text()


def test_a_port_belongs_to_the_process_group_listening_on_it(squatter: int) -> None:
    env = {**os.environ, "BIN": BIN}
    owns = "source scripts/ports.sh; owns_port {group} {port}"
    mine = subprocess.run(["bash", "-c", owns.format(group=os.getpgid(0), port=squatter)], cwd=REPO_ROOT, env=env)
    assert mine.returncode == 0  # the squatter thread runs in this test's process
    other = subprocess.run(["bash", "-c", owns.format(group=1, port=squatter)], cwd=REPO_ROOT, env=env)
    assert other.returncode == 1
