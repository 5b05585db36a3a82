"""One contract for every ObjectStore: the same tests against LocalStore and S3Store (real SeaweedFS)."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model.core.errors import NotFoundError, StorageUnavailableError
from model.data.storage import LocalStore, ObjectStore, S3Store
from tests import servers

BUCKET = "sprout-test"
DATA = bytes(range(256)) * 40


def _s3_store(s3: servers.S3Server, **overrides: object) -> S3Store:
    kwargs: dict = {
        "endpoint": s3.endpoint, "access_key": s3.access_key, "secret_key": s3.secret_key,
        "bucket": BUCKET, "prefix": f"t-{uuid.uuid4().hex[:12]}",
    }
    kwargs.update(overrides)
    return S3Store(**kwargs)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    return _s3_store(request.getfixturevalue("s3_server"))


# --- the contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["pending/abc.png", "labeled/cat/abc.jpg", "rejected/x y.webp", "top.bin"])
def test_put_get_roundtrip(store: ObjectStore, key: str) -> None:
    store.put(key, DATA, content_type="image/png")
    assert store.get(key) == DATA


def test_put_empty_object(store: ObjectStore) -> None:
    store.put("pending/empty.png", b"")
    assert store.get("pending/empty.png") == b""
    assert store.exists("pending/empty.png")


def test_put_overwrites(store: ObjectStore) -> None:
    store.put("pending/a.png", b"one")
    store.put("pending/a.png", b"two")
    assert store.get("pending/a.png") == b"two"
    assert list(store.list()) == ["pending/a.png"]


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("pending/a.png")
    store.put("pending/a.png", b"x")
    assert store.exists("pending/a.png")
    # A "directory" is not an object.
    assert not store.exists("pending")


def test_get_missing_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("pending/missing.png")
    store.put("pending/other.png", b"x")
    with pytest.raises(NotFoundError):
        store.get("pending/missing.png")


def test_directory_like_keys_are_missing(store: ObjectStore) -> None:
    store.put("labeled/cat/a.png", b"x")
    for key in ("labeled", "labeled/cat", "labeled/cat/a.png/b"):
        assert not store.exists(key)
        with pytest.raises(NotFoundError):
            store.get(key)
        store.delete(key)  # no-op
    assert store.get("labeled/cat/a.png") == b"x"


def test_copy(store: ObjectStore) -> None:
    store.put("pending/a.png", DATA)
    store.copy("pending/a.png", "labeled/cat/a.png")
    assert store.get("labeled/cat/a.png") == DATA
    assert store.get("pending/a.png") == DATA  # copy, not move


def test_copy_overwrites_destination(store: ObjectStore) -> None:
    store.put("pending/a.png", b"new")
    store.put("labeled/cat/a.png", b"old")
    store.copy("pending/a.png", "labeled/cat/a.png")
    assert store.get("labeled/cat/a.png") == b"new"


def test_copy_missing_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError):
        store.copy("pending/missing.png", "labeled/cat/missing.png")
    assert not store.exists("labeled/cat/missing.png")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("pending/a.png", b"x")
    store.delete("pending/a.png")
    assert not store.exists("pending/a.png")
    with pytest.raises(NotFoundError):
        store.get("pending/a.png")
    store.delete("pending/a.png")
    store.delete("pending/never-existed.png")


def test_list_with_prefix(store: ObjectStore) -> None:
    keys = [
        "pending/b.png", "pending/a.png", "labeled/dog/d.png", "labeled/cat/c.png", "rejected/r.png",
        # "-" sorts before "/" as a string but after it as path parts: the order must be the string order.
        "labeled/cat-x/e.png", "labeled/cat/b.png",
    ]
    for k in keys:
        store.put(k, k.encode())
    assert list(store.list()) == sorted(keys)
    assert list(store.list("")) == sorted(keys)
    assert list(store.list("pending/")) == ["pending/a.png", "pending/b.png"]
    assert list(store.list("labeled/cat/")) == ["labeled/cat/b.png", "labeled/cat/c.png"]
    assert list(store.list("labeled/cat")) == ["labeled/cat-x/e.png", "labeled/cat/b.png", "labeled/cat/c.png"]
    assert list(store.list("nothing/")) == []
    for k in store.list("labeled/"):
        assert store.get(k) == k.encode()  # listed keys are usable keys


def test_list_empty_store(store: ObjectStore) -> None:
    assert list(store.list()) == []


BAD_KEYS = ["../x", "/abs", "a//b", "", "a/../b", "./a", "a/", "a/./b", "..", "a\\b", "-a", "a\x00b"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize(
    "op",
    [
        pytest.param(lambda s, k: s.put(k, b"x"), id="put"),
        pytest.param(lambda s, k: s.get(k), id="get"),
        pytest.param(lambda s, k: s.exists(k), id="exists"),
        pytest.param(lambda s, k: s.delete(k), id="delete"),
        pytest.param(lambda s, k: s.copy(k, "pending/ok.png"), id="copy-src"),
        pytest.param(lambda s, k: s.copy("pending/ok.png", k), id="copy-dst"),
    ],
)
def test_invalid_keys_raise_value_error(
    store: ObjectStore, key: str, op: Callable[[ObjectStore, str], object]
) -> None:
    store.put("pending/ok.png", b"x")
    with pytest.raises(ValueError):
        op(store, key)
    assert list(store.list()) == ["pending/ok.png"]


def test_local_invalid_key_does_not_escape_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    with pytest.raises(ValueError):
        store.put("../escaped.png", b"x")
    assert not (tmp_path / "escaped.png").exists()


def test_ping(store: ObjectStore) -> None:
    store.ping()
    store.put("pending/a.png", b"x")
    store.ping()


# --- S3 specifics -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_prefix_isolates_stores(s3_server: servers.S3Server) -> None:
    base = uuid.uuid4().hex[:12]
    a = _s3_store(s3_server, prefix=f"{base}-1")
    b = _s3_store(s3_server, prefix=f"/{base}-10/")  # slashes are stripped; "-1" must not see "-10"
    a.put("pending/x.png", b"a")
    b.put("pending/x.png", b"b")
    assert list(a.list()) == ["pending/x.png"]
    assert list(b.list()) == ["pending/x.png"]
    assert (a.get("pending/x.png"), b.get("pending/x.png")) == (b"a", b"b")
    names = sorted(o.object_name for o in s3_server.client().list_objects(BUCKET, prefix=base, recursive=True))
    assert names == [f"{base}-1/pending/x.png", f"{base}-10/pending/x.png"]
    a.delete("pending/x.png")
    assert b.exists("pending/x.png")


@pytest.mark.integration
def test_s3_creates_missing_bucket(s3_server: servers.S3Server) -> None:
    bucket = f"sprout-new-{uuid.uuid4().hex[:8]}"
    store = _s3_store(s3_server, bucket=bucket)
    store.ping()
    assert s3_server.client().bucket_exists(bucket)


@pytest.mark.integration
@pytest.mark.parametrize("which", ["access_key", "secret_key"])
def test_s3_wrong_credentials_is_unavailable(s3_server: servers.S3Server, which: str) -> None:
    store = _s3_store(s3_server, **{which: "wrong-" + uuid.uuid4().hex})
    with pytest.raises(StorageUnavailableError):
        store.ping()
    with pytest.raises(StorageUnavailableError):
        store.put("pending/a.png", b"x")


@pytest.mark.integration
def test_s3_bucket_created_concurrently(s3_server: servers.S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = f"sprout-race-{uuid.uuid4().hex[:8]}"
    store = _s3_store(s3_server, bucket=bucket)
    s3_server.client().make_bucket(bucket)  # another process wins the race ...
    monkeypatch.setattr(store.client, "bucket_exists", lambda _name: False)  # ... after our check
    store.put("pending/a.png", b"x")
    assert store.get("pending/a.png") == b"x"


UNREACHABLE_OPS = [
    pytest.param(lambda s: s.put("pending/a.png", b"x"), id="put"),
    pytest.param(lambda s: s.get("pending/a.png"), id="get"),
    pytest.param(lambda s: s.ping(), id="ping"),
    pytest.param(lambda s: s.exists("pending/a.png"), id="exists"),
    pytest.param(lambda s: s.delete("pending/a.png"), id="delete"),
    pytest.param(lambda s: list(s.list()), id="list"),
    pytest.param(lambda s: s.copy("pending/a.png", "pending/b.png"), id="copy"),
]


@pytest.mark.parametrize("op", UNREACHABLE_OPS)
def test_s3_closed_port_is_unavailable_quickly(op: Callable[[S3Store], object]) -> None:
    port = servers.free_port()  # nothing listens there
    store = S3Store(endpoint=f"127.0.0.1:{port}", access_key="k", secret_key="s" * 16, bucket=BUCKET)
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        op(store)
    assert time.monotonic() - start < 5


@pytest.fixture
def not_s3_endpoint() -> Iterator[str]:
    """127.0.0.1:PORT of an HTTP server that answers every request with an HTML error page."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"<html><body>not S3</body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("op", UNREACHABLE_OPS)
def test_s3_non_s3_endpoint_is_unavailable(not_s3_endpoint: str, op: Callable[[S3Store], object]) -> None:
    store = S3Store(endpoint=not_s3_endpoint, access_key="k", secret_key="s" * 16, bucket=BUCKET)
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        op(store)
    assert time.monotonic() - start < 5
