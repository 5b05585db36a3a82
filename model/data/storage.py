"""Object storage: one interface, two implementations (local directory and S3 via the minio SDK).

Layout: ``pending/<sha256>.<ext>``, ``labeled/<label>/<sha256>.<ext>``, ``rejected/<sha256>.<ext>``.
Objects are named by content hash, so a key never changes meaning.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from model.core.errors import ConflictError, InvalidLabelError, NotFoundError, StorageUnavailableError
from model.core.settings import Settings

log = logging.getLogger(__name__)

PENDING = "pending"
LABELED = "labeled"
REJECTED = "rejected"

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/ -]*$")
# Label names are data: any folder-per-label set works, as long as the names are safe key segments.
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_label(label: str) -> str:
    """Return ``label`` stripped, or raise if it cannot be a storage path segment."""
    label = label.strip()
    if not _LABEL_RE.match(label):
        raise InvalidLabelError(
            f"Invalid label {label!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit."
        )
    return label


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (``..``, absolute paths, odd characters)."""
    parts = key.split("/")
    if not _KEY_RE.match(key) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key: {key!r}")
    return key


def pending_key(sha256: str, ext: str) -> str:
    return f"{PENDING}/{sha256}.{ext}"


def labeled_key(label: str, sha256: str, ext: str) -> str:
    return f"{LABELED}/{label}/{sha256}.{ext}"


def rejected_key(sha256: str, ext: str) -> str:
    return f"{REJECTED}/{sha256}.{ext}"


def sha_of_key(key: str) -> str:
    """The content hash an object key is named after."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


class ObjectStore(Protocol):
    """What Sprout needs from an object store."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def copy(self, src: str, dst: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str = "") -> Iterator[str]: ...
    def modified(self, key: str) -> datetime | None: ...
    def ping(self) -> None: ...


class LocalStore:
    """Objects as files under a root directory; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            # A directory, or a path through a file, is no object (as on S3).
            raise NotFoundError(f"object not found: {key}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def copy(self, src: str, dst: str) -> None:
        self.put(dst, self.get(src))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        # Sort the key strings (as S3 lists them), not the paths: "a-b/x" < "a/x" as strings only.
        yield from sorted(keys)

    def modified(self, key: str) -> datetime | None:
        """When the object was last written (None when it does not exist)."""
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime, UTC)
        except FileNotFoundError:
            return None

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageUnavailableError(f"object store directory not writable: {self.root}")


class S3Store:
    """Objects in an S3 bucket (MinIO in deployment, SeaweedFS in tests) through the minio SDK."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        prefix: str = "",
    ) -> None:
        from minio import Minio
        from urllib3 import PoolManager, Retry, Timeout

        http = PoolManager(
            # Bounded: a frozen or partitioned store costs at most ~2 × (2 + 4) s, then StorageUnavailableError.
            timeout=Timeout(connect=2, read=4),
            retries=Retry(total=1, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=16,
        )
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
            http_client=http,
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._bucket_ready = False

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from minio.error import S3Error

        with _s3_errors():
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # another process created it in between
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        name = self._k(key)
        self._ensure_bucket()
        with _s3_errors():
            self.client.put_object(self.bucket, name, io.BytesIO(data), len(data), content_type=content_type)

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        name = self._k(key)
        self._ensure_bucket()
        try:
            with _s3_errors():
                resp = self.client.get_object(self.bucket, name)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise NotFoundError(f"object not found: {key}") from exc
            raise
        try:
            with _s3_errors():
                return resp.read()
        finally:
            resp.close()
            resp.release_conn()

    def exists(self, key: str) -> bool:
        return self.modified(key) is not None

    def modified(self, key: str) -> datetime | None:
        """When the object was last written (None when it does not exist)."""
        from minio.error import S3Error

        name = self._k(key)
        self._ensure_bucket()
        try:
            with _s3_errors():
                stat = self.client.stat_object(self.bucket, name)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
                return None
            raise
        return stat.last_modified

    def copy(self, src: str, dst: str) -> None:
        from minio.commonconfig import CopySource

        src_name, dst_name = self._k(src), self._k(dst)
        if not self.exists(src):
            raise NotFoundError(f"object not found: {src}")
        with _s3_errors():
            self.client.copy_object(self.bucket, dst_name, CopySource(self.bucket, src_name))

    def delete(self, key: str) -> None:
        name = self._k(key)
        self._ensure_bucket()
        with _s3_errors():
            self.client.remove_object(self.bucket, name)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._ensure_bucket()
        with _s3_errors():
            objects = list(self.client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True))
        for obj in sorted(objects, key=lambda o: o.object_name or ""):
            name = obj.object_name or ""
            if not name.endswith("/"):
                yield name[len(self.prefix) :]

    def ping(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()


class _s3_errors:
    """Turn connection failures into StorageUnavailableError (S3 API errors pass through)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: object
    ) -> Literal[False]:
        if exc is None:
            return False
        from minio.error import InvalidResponseError, S3Error, ServerError
        from urllib3.exceptions import HTTPError

        if isinstance(exc, S3Error):
            if exc.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageUnavailableError(f"object store refused the credentials: {exc.code}") from exc
            return False
        if isinstance(exc, (InvalidResponseError, ServerError)):
            log.warning("object store gave a non-S3 answer: %s", exc)
            raise StorageUnavailableError("The object store is unavailable; try again shortly.") from exc
        if isinstance(exc, (HTTPError, OSError)):
            log.warning("object store unreachable: %s", exc)
            raise StorageUnavailableError("The object store is unreachable; try again shortly.") from exc
        return False


def s3_store(settings: Settings, *, bucket: str, prefix: str) -> S3Store:
    """A store on Sprout's S3 endpoint with its credentials (``SPROUT_S3_*``), in any bucket and prefix."""
    if not settings.s3_endpoint:
        raise StorageUnavailableError("No S3 endpoint configured: set SPROUT_S3_ENDPOINT, SPROUT_S3_ACCESS_KEY "
                                      "and SPROUT_S3_SECRET_KEY.")
    assert settings.s3_access_key and settings.s3_secret_key  # enforced by Settings
    return S3Store(
        endpoint=settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        bucket=bucket,
        secure=settings.s3_secure,
        region=settings.s3_region,
        prefix=prefix,
    )


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _local_overlap(path: Path, root: Path) -> str | None:
    """How ``path`` meets the directory ``root`` (symlinks and ``..`` resolved; a bind mount of it counts)."""
    path, root = path.resolve(), root.resolve()
    if path.is_relative_to(root) or any(_same_dir(p, root) for p in (path, *path.parents)):
        return "is or lies inside"
    if root.is_relative_to(path) or any(_same_dir(path, p) for p in root.parents):
        return "contains"
    return None


def check_outside_store(location: str | Path, settings: Settings) -> None:
    """Refuse a data set location (a directory, or ``s3://bucket/prefix``) that overlaps the live object store:
    with S3, any prefix of ``SPROUT_S3_BUCKET`` (exports and imports use ``SPROUT_S3_ENDPOINT`` too); locally,
    the objects directory, a folder inside it or one that contains it. Raises ConflictError."""
    where = str(location)
    if where.startswith("s3://"):
        bucket = where[len("s3://"):].partition("/")[0]
        if settings.s3_endpoint and bucket.lower() == settings.s3_bucket.lower():
            raise ConflictError(f"{where} is in s3://{settings.s3_bucket}, the bucket of Sprout's object store: "
                                "choose another bucket.")
        return
    if settings.s3_endpoint:
        return
    how = _local_overlap(Path(location), settings.objects_dir)
    if how:
        raise ConflictError(f"{where} {how} Sprout's object store ({settings.objects_dir}): choose a folder "
                            "outside it.")


def check_not_in_store(path: Path, settings: Settings) -> None:
    """Refuse a file or folder that leads into the live local object store (e.g. a symlinked label folder)."""
    if not settings.s3_endpoint and _local_overlap(path, settings.objects_dir) == "is or lies inside":
        raise ConflictError(f"{path} leads into Sprout's object store ({settings.objects_dir}): it is refused.")


def make_store(settings: Settings) -> ObjectStore:
    """The store the settings describe: S3 when an endpoint is set, else a local directory."""
    if settings.s3_endpoint:
        return s3_store(settings, bucket=settings.s3_bucket, prefix=settings.s3_prefix)
    return LocalStore(settings.objects_dir)
