"""Import a folder-per-label tree as approved samples (``sprout import``, ``sprout bootstrap``).

The tree is a local folder, or an S3 prefix (``s3://bucket/prefix``) downloaded into a temporary directory
first (``<prefix>/<label>/.../<image>`` → ``<tmp>/<label>/.../<image>``), so deduplication, label checks and
error reporting are those of ``import_directory``. The S3 client uses Sprout's own object-store endpoint and
credentials (``SPROUT_S3_*``) when they are set, so a data set can sit in another bucket of the same
MinIO/S3; otherwise boto3's standard chain (AWS environment variables, ``~/.aws``, an instance or pod role,
``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db.models import SampleSource
from model.core.errors import InvalidLabelError, NotFoundError, SproutError, StorageUnavailableError
from model.core.settings import Settings
from model.data.label_changes import current_label
from model.data.samples import add_sample
from model.data.storage import ObjectStore, check_label, check_not_in_store, check_outside_store

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class ImportSummary:
    """What ``sprout import`` did."""

    added: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {
            "added": sum(self.added.values()),
            "added_by_label": dict(sorted(self.added.items())),
            "skipped_duplicates": self.duplicates,
            "errors": [{"file": f, "error": e} for f, e in self.errors],
        }


def find_labeled_files(root: Path) -> list[tuple[str, Path]]:
    """``(label, path)`` for every image file in a folder-per-label tree."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"Not a directory: {root}")
    found = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(label_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                found.append((label_dir.name, path))
    return found


def import_directory(
    session: Session,
    store: ObjectStore,
    root: Path,
    *,
    progress: Callable[[Iterable[tuple[str, Path]], int], Iterable[tuple[str, Path]]] | None = None,
) -> ImportSummary:
    """Import a folder-per-label tree as approved samples; bad files are reported, not fatal."""
    files = find_labeled_files(root)
    summary = ImportSummary()
    current: dict[str, str] = {}  # a folder named after a renamed or merged label fills today's label
    for label_name in sorted({label for label, _ in files}):
        try:
            current[label_name] = current_label(session, check_label(label_name))
        except InvalidLabelError as exc:  # not a safe name, or retired
            summary.errors.append((label_name + "/", str(exc)))
    iterator: Iterable[tuple[str, Path]] = progress(files, len(files)) if progress else files
    for folder, path in iterator:
        rel = str(path.relative_to(root))
        label = current.get(folder)
        if label is None:
            continue
        try:
            _, created = add_sample(session, store, data=path.read_bytes(), source=SampleSource.IMPORT,
                                    label=label)
        except (SproutError, OSError) as exc:
            summary.errors.append((rel, str(exc)))
            continue
        if created:
            summary.added[label] += 1
        else:
            summary.duplicates += 1
    return summary

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class S3Prefix:
    """A parsed ``s3://bucket/prefix`` (prefix without leading/trailing slashes, maybe empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Prefix:
        rest = url[len(S3_SCHEME):] if url.startswith(S3_SCHEME) else ""
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise NotFoundError(f"Not an S3 prefix (expected s3://bucket/prefix): {url}")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"


def is_s3(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(S3_SCHEME)


@contextlib.contextmanager
def local_tree(source: str | Path, settings: Settings) -> Iterator[Path]:
    """A local folder-per-label tree for ``source``: the folder itself, or an S3 prefix downloaded to a
    temporary directory that is deleted afterwards. A source that overlaps Sprout's own object store (or a file
    in the tree that leads into it) is refused: its unreviewed uploads would be imported as approved."""
    check_outside_store(source, settings)
    if not is_s3(source):
        for _, path in find_labeled_files(Path(source)):
            check_not_in_store(path, settings)
        yield Path(source)
        return
    with tempfile.TemporaryDirectory(prefix="sprout-import-") as tmp:
        yield download_prefix(S3Prefix.parse(str(source)), Path(tmp), settings)


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client: Sprout's endpoint and credentials (``SPROUT_S3_*``) when set, else boto3's chain."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    if settings.s3_endpoint:
        scheme = "https" if settings.s3_secure else "http"
        return boto3.client(
            "s3", endpoint_url=f"{scheme}://{settings.s3_endpoint}", aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            region_name=settings.s3_region or "us-east-1", config=config,
        )
    return boto3.client("s3", config=config)


@contextlib.contextmanager
def s3_errors(source: S3Prefix) -> Iterator[None]:
    """boto3 failures as Sprout errors: a missing bucket is NotFoundError, the rest StorageUnavailableError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket", "404", "NotFound"):
            raise NotFoundError(f"S3 bucket not found: {source.bucket}") from exc
        raise StorageUnavailableError(f"S3 refused to list or read {source}: {code or exc}") from exc
    except BotoCoreError as exc:
        raise StorageUnavailableError(f"S3 unreachable for {source}: {exc}") from exc


def list_keys(client: Any, source: S3Prefix) -> Iterator[str]:
    """Every object key under ``source`` (its "folder": ``prefix/...``), as S3 lists them (sorted)."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=source.bucket, Prefix=f"{source.prefix}/" if source.prefix else "")
    for page in pages:
        for obj in page.get("Contents", []):
            yield obj["Key"]


def _relative_parts(key: str, prefix: str) -> tuple[str, ...] | None:
    """The key's path below the prefix as safe parts (label first), or None for what is not an image file
    inside a label folder (top-level files, "directory" markers, odd names)."""
    if key.startswith("/") or "\\" in key or "\x00" in key:
        return None  # absolute or Windows-style keys could write outside the destination
    if prefix and not key.startswith(prefix + "/"):
        return None
    rel = key[len(prefix) + 1:] if prefix else key
    raw = rel.split("/")
    if len(raw) < 2 or any(p in ("", ".", "..") for p in raw):
        return None
    return tuple(raw)


def download_prefix(source: S3Prefix, dest: Path, settings: Settings) -> Path:
    """Download every object under ``source`` that lies in a label folder into ``dest``; returns ``dest``."""
    client = s3_client(settings)
    count = 0
    with s3_errors(source):
        for key in list_keys(client, source):
            parts = _relative_parts(key, source.prefix)
            if parts is None:
                if key.startswith("/") or ".." in key.split("/"):
                    log.warning("refused S3 key %r: it would write outside the import directory", key)
                continue
            target = dest.joinpath(*parts)
            if not target.resolve().is_relative_to(dest.resolve()):
                log.warning("refused S3 key %r: it would write outside the import directory", key)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(source.bucket, key, str(target))
            count += 1
    if count == 0:
        raise NotFoundError(f"No files in label folders under {source}")
    log.info("downloaded %d objects from %s", count, source)
    return dest
