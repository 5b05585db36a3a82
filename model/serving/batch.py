"""Batch scoring (``sprout predict SOURCE... [--output DEST]``): the images of files, folders and S3 prefixes,
a deterministic shard of them, scored in worker processes, written as JSONL or CSV.

Each worker is a process with its own ONNX Runtime session (one intra-op thread) and its own S3 client; the
parent hands them chunks of paths and keeps the input order. A shard ``I/N`` holds the paths whose SHA-256
is ``I`` modulo ``N``, so N shard runs over the same listing score every image exactly once, whatever order
the listing comes in. An unreadable or undecodable image is a row with an ``error``, never a failed batch;
an S3 outage is ``StorageUnavailableError``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.core.errors import NotFoundError, SproutError, StorageUnavailableError
from model.core.settings import Settings
from model.data.images import DEFAULT_MAX_PIXELS
from model.data.importer import IMAGE_SUFFIXES, S3_SCHEME, S3Prefix, is_s3, list_keys, s3_client, s3_errors
from model.data.storage import LocalStore, ObjectStore, s3_store
from model.serving.predictor import Predictor

log = logging.getLogger(__name__)

# The CSV's columns in order: those added later go at the end, so that readers by position keep working.
FIELDS = ("path", "label", "confidence", "probabilities", "model_version", "error", "abstained", "unfamiliar")
FORMATS = ("jsonl", "csv")
SHARDS_DIR = "shards"
Row = dict[str, Any]


# --------------------------------------------------------------------------- what to score


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the paths whose SHA-256 is ``index`` modulo ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with 0 ≤ I < N."""
        index, sep, count = text.partition("/")
        try:
            shard = cls(int(index), int(count))
        except ValueError:
            shard = cls(-1, 0)
        if not sep or not 0 <= shard.index < shard.count:
            raise SproutError(f"A shard is I/N with 0 <= I < N, e.g. 0/4; got {text!r}.")
        return shard

    def holds(self, path: str) -> bool:
        return shard_of(path, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(path: str, count: int) -> int:
    """The shard (of ``count``) a path belongs to: stable across runs, machines and listing orders."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % count


def shard_sizes(paths: Sequence[str], count: int) -> list[int]:
    """How many of ``paths`` each of ``count`` shards holds."""
    sizes = [0] * count
    for path in paths:
        sizes[shard_of(path, count)] += 1
    return sizes


def list_images(sources: Sequence[str], settings: Settings, *,
                skip: Callable[[str], bool] = lambda _path: False) -> list[str]:
    """The paths to score, without repeats: a file as given; a folder's image files (recursive, sorted);
    an S3 prefix's image objects as ``s3://bucket/key`` (sorted). ``skip`` leaves paths out (the output's own)."""
    found: list[str] = []
    for source in sources:
        if is_s3(source):
            prefix = S3Prefix.parse(source)
            with s3_errors(prefix):
                keys = [k for k in list_keys(s3_client(settings), prefix) if _is_image(k)]
            found += [f"{S3_SCHEME}{prefix.bucket}/{key}" for key in keys]
        elif Path(source).is_dir():
            found += sorted(str(p) for p in Path(source).rglob("*") if p.is_file() and _is_image(p.name)
                            and not any(part.startswith(".") for part in p.relative_to(source).parts))
        else:
            found.append(source)  # a missing or odd file becomes a row with an error
    return [path for path in dict.fromkeys(found) if not skip(path)]


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


# --------------------------------------------------------------------------- scoring


class Scorer:
    """One process's predictor and S3 client: reads and classifies chunks of paths."""

    def __init__(self, model: Path, *, version: str | None, settings: Settings, threads: int = 1,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.predictor = Predictor.load(model, version=version, threads=threads, max_pixels=max_pixels)
        self.settings = settings
        self._s3: Any = None

    def read(self, path: str) -> bytes:
        """The bytes of a local file or an ``s3://bucket/key`` object (NotFoundError when it is gone)."""
        if not is_s3(path):
            return Path(path).read_bytes()
        from botocore.exceptions import ClientError

        bucket, _, key = path[len(S3_SCHEME):].partition("/")
        if self._s3 is None:
            self._s3 = s3_client(self.settings)
        with s3_errors(S3Prefix(bucket, key)):
            try:
                return bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchObject"):
                    raise NotFoundError(f"object not found: {path}") from None
                raise

    def score(self, paths: Sequence[str]) -> list[Row]:
        """A row per path, in order; the decodable images go through the model in one batch."""
        rows: list[Row] = []
        arrays: list[np.ndarray] = []
        good: list[int] = []
        for path in paths:
            try:
                arrays.append(self.predictor.preprocess(self.read(path)))
                good.append(len(rows))
                rows.append({"path": path})
            except StorageUnavailableError:
                raise  # an outage fails the batch (a retry can cure it); a bad image is its row's error
            except SproutError as exc:
                rows.append(error_row(path, str(exc)))
            except OSError as exc:
                rows.append(error_row(path, f"cannot read: {exc}"))
        if arrays:
            for i, result in zip(good, self.predictor.results(self.predictor.run(np.stack(arrays))), strict=True):
                rows[i] = {"path": rows[i]["path"], "label": result.label, "confidence": result.confidence,
                           "probabilities": result.probabilities, "abstained": result.abstained,
                           "unfamiliar": result.unfamiliar, "model_version": result.model_version, "error": None}
        return rows


def error_row(path: str, error: str) -> Row:
    return {"path": path, "label": None, "confidence": None, "probabilities": None, "abstained": None,
            "unfamiliar": None, "model_version": None, "error": error}


_worker: Scorer | None = None


def _start_worker(model: str, version: str | None, settings: Settings, max_pixels: int) -> None:
    global _worker
    _worker = Scorer(Path(model), version=version, settings=settings, max_pixels=max_pixels)


def _score_in_worker(paths: list[str]) -> list[Row]:
    assert _worker is not None
    return _worker.score(paths)


def score_paths(paths: Sequence[str], *, model: Path, version: str | None, settings: Settings, workers: int = 1,
                max_pixels: int = DEFAULT_MAX_PIXELS, chunk_size: int = 16,
                progress: Callable[[int], None] | None = None) -> list[Row]:
    """A row per path, in order, scored by ``workers`` processes (1: this process), one ORT thread each.

    ``progress(n)`` is called as each chunk of ``n`` paths is done.
    """
    workers = max(1, min(workers, len(paths)))
    size = max(1, min(chunk_size, -(-len(paths) // (workers * 4))))
    chunks = [list(paths[i:i + size]) for i in range(0, len(paths), size)]
    done = progress or (lambda _n: None)
    if workers == 1:
        scorer = Scorer(model, version=version, settings=settings, max_pixels=max_pixels)
        rows: list[Row] = []
        for chunk in chunks:
            rows += scorer.score(chunk)
            done(len(chunk))
        return rows
    # spawn, not fork: the parent may hold threads and locks (MLflow, boto3) a forked child would inherit.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(str(model), version, settings, max_pixels))
    try:
        futures: list[Future[list[Row]]] = [pool.submit(_score_in_worker, chunk) for chunk in chunks]
        pending: set[Future[list[Row]]] = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # a worker's StorageUnavailableError (or crash) is raised here
                done(len(chunks[futures.index(future)]))
        return [row for future in futures for row in future.result()]
    finally:
        pool.shutdown(cancel_futures=True)


# --------------------------------------------------------------------------- results


def encode_rows(rows: Sequence[Row], fmt: str) -> bytes:
    """JSONL (one object per line) or CSV (``probabilities`` as a JSON object) with the columns of FIELDS."""
    if fmt == "jsonl":
        return "".join(json.dumps({k: row.get(k) for k in FIELDS}) + "\n" for row in rows).encode()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for row in rows:
        probabilities = row.get("probabilities")
        writer.writerow([row["path"], row.get("label") or "", "" if row.get("confidence") is None
                         else repr(row["confidence"]), json.dumps(probabilities) if probabilities else "",
                         row.get("model_version") or "", row.get("error") or "",
                         _flag(row.get("abstained")), _flag(row.get("unfamiliar"))])
    return out.getvalue().encode()


def decode_rows(data: bytes, fmt: str) -> list[Row]:
    """The rows ``encode_rows`` wrote."""
    text = data.decode()
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        rows.append({"path": raw["path"], "label": raw["label"] or None,
                     "confidence": float(raw["confidence"]) if raw["confidence"] else None,
                     "probabilities": json.loads(raw["probabilities"]) if raw["probabilities"] else None,
                     "abstained": _parse_flag(raw.get("abstained")), "unfamiliar": _parse_flag(raw.get("unfamiliar")),
                     "model_version": raw["model_version"] or None, "error": raw["error"] or None})
    return rows


def _flag(value: bool | None) -> str:
    """A CSV cell for a boolean: ``true``, ``false`` or empty (an error row)."""
    return "" if value is None else str(bool(value)).lower()


def _parse_flag(cell: str | None) -> bool | None:
    return None if not cell else cell == "true"


class Output:
    """Where results go: ``FILE.jsonl`` / ``FILE.csv`` (its report beside it, ``FILE.report.json``), or a folder
    or ``s3://bucket/prefix`` (``results.FMT``, ``report.json``, ``confidence.png``; shards under ``shards/``)."""

    def __init__(self, target: str, settings: Settings, *, fmt: str | None = None) -> None:
        self.target = target
        suffix = target.rsplit(".", 1)[-1].lower() if "." in target.rsplit("/", 1)[-1] else ""
        self.is_file = suffix in FORMATS and not target.endswith("/")
        if fmt is not None and fmt not in FORMATS:
            raise SproutError(f"Unknown format {fmt!r}: use jsonl or csv.")
        if self.is_file and fmt is not None and fmt != suffix:
            raise SproutError(f"--format {fmt} does not match the output file {target}.")
        self.fmt = suffix if self.is_file else (fmt or "jsonl")
        self._fmt_given = self.is_file or fmt is not None
        folder, name = (target.rsplit("/", 1) if "/" in target else (".", target)) if self.is_file \
            else (target.rstrip("/") or "/", "")
        stem = name[: -len(self.fmt) - 1] if name else ""
        self.results_name = name or f"results.{self.fmt}"
        self.report_name = f"{stem}.report.json" if stem else "report.json"
        self.histogram_name = f"{stem}.confidence.png" if stem else "confidence.png"
        self.s3 = S3Prefix.parse(folder) if is_s3(folder) else None
        if self.s3 is None and Path(folder).is_file():
            raise SproutError(f"The output folder {folder} is a file.")
        self._folder = folder
        self._settings = settings
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        """The folder or prefix as an object store (made on first use)."""
        if self._store is None:
            self._store = s3_store(self._settings, bucket=self.s3.bucket, prefix=self.s3.prefix) if self.s3 \
                else LocalStore(Path(self._folder))
        return self._store

    def url(self, name: str) -> str:
        """Where ``name`` lies: an ``s3://`` URL or a local path."""
        if self.s3 is not None:
            return f"{S3_SCHEME}{self.s3.bucket}/{self.s3.prefix + '/' if self.s3.prefix else ''}{name}"
        return os.path.join(self._folder, name)

    def owns(self, path: str) -> bool:
        """Whether a listed image is this output's own (its histogram, or anything inside an output folder),
        so a source that contains the output never scores it."""
        own = {self.url(self.histogram_name)} if self.is_file else set()
        if self.s3 is not None:
            return path in own or (not self.is_file and path.startswith(self.url("")))
        resolved = Path(path).resolve()
        return resolved in {Path(p).resolve() for p in own} or (
            not self.is_file and resolved.is_relative_to(Path(self._folder).resolve()))

    def shard_name(self, shard: Shard) -> str:
        return f"{SHARDS_DIR}/results-{shard.index:05d}-of-{shard.count:05d}.{self.fmt}"

    def put(self, name: str, data: bytes, content_type: str) -> str:
        """Write one file whole; returns its URL."""
        try:
            self.store.put(name, data, content_type)
        except ValueError as exc:  # a name the store refuses
            raise SproutError(f"Cannot write {self.url(name)}: {exc}") from None
        return self.url(name)

    def write_rows(self, rows: Sequence[Row], shard: Shard | None = None) -> str:
        """The results (or one shard's) as JSONL or CSV; returns their URL."""
        name = self.shard_name(shard) if shard else self.results_name
        return self.put(name, encode_rows(rows, self.fmt), "text/csv" if self.fmt == "csv" else "application/jsonl")

    def read_shards(self, count: int | None = None) -> tuple[int, list[Row]]:
        """The rows of every shard file of one run (``count`` shards, or the only count present), shard by shard.

        NotFoundError when a shard of that count is missing (its task has not run or failed)."""
        if self.is_file:
            raise SproutError("Shards are written to a folder or S3 prefix, not to a file: give that instead.")
        found: dict[tuple[int, str], dict[int, str]] = {}  # (count, format) → index → key
        for key in self.store.list(f"{SHARDS_DIR}/"):
            stem, _, ext = key.rsplit("/", 1)[-1].partition(".")
            parts = stem.split("-")
            if (ext == self.fmt or (not self._fmt_given and ext in FORMATS)) and len(parts) == 4 \
                    and parts[0] == "results" and parts[2] == "of" and parts[1].isdigit() and parts[3].isdigit():
                found.setdefault((int(parts[3]), ext), {})[int(parts[1])] = key
        sets = [s for s in found if count is None or s[0] == count]
        if len(sets) != 1:
            what = "No" if not sets else "Several sets of"
            hint = ": give the number of shards and the format" if sets else ""
            raise NotFoundError(f"{what} shard files{'' if count is None else f' of {count}'} under "
                                f"{self.url(SHARDS_DIR)}/{hint}")
        (count, self.fmt), keys = sets[0], found[sets[0]]
        self.results_name = f"results.{self.fmt}"
        missing = [i for i in range(count) if i not in keys]
        if missing:
            raise NotFoundError(f"Shards {missing} of {count} are missing under {self.url(SHARDS_DIR)}/")
        return count, [row for i in range(count) for row in decode_rows(self.store.get(keys[i]), self.fmt)]
