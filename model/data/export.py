"""Export the approved samples, or exactly a model version's lineage, as a folder-per-label tree
(``sprout export-dataset``) that ``sprout import`` reads back to the same counts per label.

Layout under the destination (a directory or ``s3://bucket/prefix``, written through an ``ObjectStore``):
``<label>/<sha256>.<ext>`` (the stored, metadata-free bytes, named like the stored object), ``manifest.csv``
and, on request, ``embeddings.parquet``. The importer reads label folders only, so the two files at the root
are never taken for samples. The manifest is written last: a tree with a manifest is a complete export.
``--overwrite`` deletes only the files an earlier export's manifest lists (and its ``embeddings.parquet``), and
only once the new export is complete; other files in the destination stay. A destination that overlaps
Sprout's own object store is refused.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db import queries
from db.models import Review, Sample, SampleSource, Split, TrainingRun
from model.core.errors import ConflictError, NotFoundError, StorageUnavailableError
from model.core.settings import Settings
from model.data.importer import S3Prefix, is_s3
from model.data.storage import LocalStore, ObjectStore, check_outside_store, s3_store

MANIFEST = "manifest.csv"
EMBEDDINGS = "embeddings.parquet"
MANIFEST_COLUMNS = ("sha256", "file", "label", "split", "source", "reviewer", "approved_at", "near_duplicate_group")

# The sample files an export writes, and so all that ``--overwrite`` may delete (with the two files at the root).
_EXPORT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[0-9a-f]{64}\.[A-Za-z0-9]+$")

Progress = Callable[[Iterable["ExportRow"], int], Iterable["ExportRow"]]


@dataclass(frozen=True)
class ExportRow:
    """One exported sample: where its bytes are, and what the manifest says of it."""

    sha256: str
    object_key: str
    content_type: str
    label: str
    split: Split
    source: SampleSource
    reviewer: str
    approved_at: datetime | None
    near_duplicate_group: int | None

    @property
    def file(self) -> str:
        """Path below the destination: ``<label>/<sha256>.<ext>``."""
        return f"{self.label}/{self.object_key.rsplit('/', 1)[-1]}"

    def manifest_row(self) -> list[str]:
        group = self.near_duplicate_group
        return [self.sha256, self.file, self.label, self.split.value, self.source.value, self.reviewer,
                _iso(self.approved_at), "" if group is None else str(group)]


@dataclass
class ExportSummary:
    """What ``sprout export-dataset`` wrote."""

    dest: str
    version: str | None
    by_label: Counter[str] = field(default_factory=Counter)
    embeddings: dict[str, Any] | None = None
    replaced: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape."""
        return {"dest": self.dest, "samples": sum(self.by_label.values()),
                "by_label": dict(sorted(self.by_label.items())), "version": self.version,
                "embeddings": self.embeddings, "replaced": self.replaced}


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes, stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else _utc(moment).isoformat()


def _row(sample: Sample, *, label: str, split: Split, reviewer: str, approved_at: datetime | None) -> ExportRow:
    return ExportRow(sha256=sample.sha256, object_key=sample.object_key, content_type=sample.content_type,
                     label=label, split=split, source=sample.source, reviewer=reviewer, approved_at=approved_at,
                     near_duplicate_group=sample.duplicate_group)


def current_rows(session: Session) -> list[ExportRow]:
    """Every approved sample with its current label and split."""
    return [_row(s, label=s.label, split=s.split, reviewer=s.reviewed_by or "", approved_at=s.approved_at)
            for s in queries.approved_samples(session) if s.label]


def find_run(session: Session, version: str) -> TrainingRun:
    """The run that registered ``version``, or NotFoundError."""
    run = queries.get_run_by_version(session, version=version)
    if run is None:
        raise NotFoundError(f"Model version {version} was not registered by a Sprout training run.")
    return run


def lineage_rows(session: Session, run: TrainingRun) -> list[ExportRow]:
    """The samples ``run`` trained and was tested on, with the label and split it used; reviewer and
    approval time are those of the decision behind that label (the last one before the run started)."""
    lineage = queries.run_lineage(session, run_id=run.id)
    decisions: defaultdict[int, list[Review]] = defaultdict(list)
    for review in queries.approval_reviews(session, sample_ids=[s.id for _, s in lineage]):
        decisions[review.sample_id].append(review)
    started = _utc(run.started_at)
    rows = []
    for used, sample in lineage:
        decision = next((r for r in reversed(decisions[sample.id]) if _utc(r.created_at) <= started), None)
        reviewer, approved_at = (decision.reviewer, decision.created_at) if decision else ("", sample.created_at)
        rows.append(_row(sample, label=used.label, split=used.split, reviewer=reviewer, approved_at=approved_at))
    return rows


def embeddings_backbone(session: Session, *, run: TrainingRun | None,
                        champion_version: Callable[[], str | None]) -> str:
    """The backbone of ``run``, else of the champion's run, else of the latest succeeded run."""
    if run is None:
        version = champion_version()
        run = queries.get_run_by_version(session, version=version) if version else None
    run = run or queries.last_succeeded_run(session)
    if run is None:
        raise NotFoundError("No training run yet, so no backbone whose embeddings to export.")
    return run.backbone


def embeddings_parquet(session: Session, *, backbone: str, hashes: list[str]) -> tuple[bytes, int]:
    """``embeddings.parquet`` (sha256, backbone, vector: list<float32>) of the cached vectors of ``hashes``,
    in their order, and how many rows it has (samples never embedded with ``backbone`` are left out)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    cached = queries.cached_embeddings(session, backbone=backbone, hashes=hashes)
    found = [sha for sha in hashes if sha in cached]
    table = pa.table({
        "sha256": pa.array(found, type=pa.string()),
        "backbone": pa.array([backbone] * len(found), type=pa.string()),
        "vector": pa.array([np.frombuffer(cached[sha], dtype=np.float32) for sha in found],
                           type=pa.list_(pa.float32())),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue(), len(found)


def manifest_csv(rows: Iterable[ExportRow]) -> bytes:
    """``manifest.csv``: a header, then one line per exported sample."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(row.manifest_row() for row in rows)
    return buf.getvalue().encode()


def open_destination(dest: str | Path, settings: Settings) -> tuple[ObjectStore, str]:
    """The store to write an export to and its name: a local directory, or an S3 prefix on Sprout's S3
    endpoint with its credentials (``SPROUT_S3_*``). A destination that overlaps Sprout's own object store
    is refused (ConflictError)."""
    check_outside_store(dest, settings)
    if is_s3(dest):
        prefix = S3Prefix.parse(str(dest))
        if not settings.s3_endpoint:
            raise StorageUnavailableError(f"Writing to {prefix} needs Sprout's S3 settings: SPROUT_S3_ENDPOINT, "
                                          "SPROUT_S3_ACCESS_KEY and SPROUT_S3_SECRET_KEY.")
        return s3_store(settings, bucket=prefix.bucket, prefix=prefix.prefix), str(prefix)
    path = Path(dest)
    if path.exists() and not path.is_dir():
        raise ConflictError(f"Not a directory: {path}")
    return LocalStore(path), str(path)


def _listed_files(manifest: bytes, name: str) -> list[str]:
    """The ``file`` column of an earlier export's manifest; refused if it names a file no export writes."""
    rows = list(csv.DictReader(io.StringIO(manifest.decode("utf-8", errors="replace"))))
    files = [row.get("file") or "" for row in rows]
    foreign = next((f for f in files if not _EXPORT_FILE.match(f)), None)
    if foreign is not None:
        raise ConflictError(f"{name}/{MANIFEST} lists {foreign!r}, which no export writes: it is no previous "
                            "export, and --overwrite replaces only one; choose an empty destination.")
    return files


def previous_export(store: ObjectStore, name: str, *, overwrite: bool) -> list[str]:
    """The files of the earlier export at the destination, which ``--overwrite`` replaces: those its
    ``manifest.csv`` lists, its ``embeddings.parquet`` and the manifest. Nothing for an empty destination;
    a non-empty one is refused without ``overwrite``, and one without a manifest always."""
    keys = set(store.list())
    if not keys:
        return []
    if not overwrite:
        raise ConflictError(f"{name} is not empty ({len(keys)} files): choose an empty destination, or pass "
                            "--overwrite to replace a previous export.")
    if MANIFEST not in keys:
        raise ConflictError(f"{name} holds no {MANIFEST}, so it is no previous export, and --overwrite replaces "
                            "only one: choose an empty destination.")
    return [*_listed_files(store.get(MANIFEST), name), *(k for k in (EMBEDDINGS, MANIFEST) if k in keys)]


def check_label_folders(store: ObjectStore, name: str, files: Iterable[str]) -> None:
    """Refuse a local destination whose label folders link elsewhere: writes and deletes would land there."""
    if not isinstance(store, LocalStore):
        return
    root = store.root.resolve()
    for folder in sorted({f.split("/", 1)[0] for f in files if "/" in f}):
        target = (store.root / folder).resolve()
        if target != root / folder:
            raise ConflictError(f"{name}/{folder} is a link to {target}: an export writes only inside {name}.")


def export_dataset(
    session: Session,
    source: ObjectStore,
    dest: ObjectStore,
    *,
    dest_name: str,
    version: str | None = None,
    embeddings: bool = False,
    champion_version: Callable[[], str | None] = lambda: None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the approved samples (with ``version``: that version's lineage) from ``source`` to ``dest``."""
    run = find_run(session, version) if version is not None else None
    rows = lineage_rows(session, run) if run is not None else current_rows(session)
    if not rows:
        raise NotFoundError("Nothing to export: no approved samples." if run is None
                            else f"Version {version}'s run recorded no samples.")
    parquet: tuple[bytes, int] | None = None
    summary = ExportSummary(dest=dest_name, version=version)
    if embeddings:
        backbone = embeddings_backbone(session, run=run, champion_version=champion_version)
        parquet = embeddings_parquet(session, backbone=backbone, hashes=[r.sha256 for r in rows])
        summary.embeddings = {"file": EMBEDDINGS, "backbone": backbone, "rows": parquet[1],
                              "missing": len(rows) - parquet[1]}
    session.commit()  # end the read transaction: no database connection is held while files are copied
    earlier = previous_export(dest, dest_name, overwrite=overwrite)
    check_label_folders(dest, dest_name, [*earlier, *(r.file for r in rows)])
    for row in progress(rows, len(rows)) if progress else rows:
        dest.put(row.file, source.get(row.object_key), row.content_type)
        summary.by_label[row.label] += 1
    if parquet is not None:
        dest.put(EMBEDDINGS, parquet[0], "application/vnd.apache.parquet")
    dest.put(MANIFEST, manifest_csv(rows), "text/csv")
    # Only now, with the new export complete, the earlier one's files that it did not rewrite go.
    written = {r.file for r in rows} | {MANIFEST} | ({EMBEDDINGS} if parquet is not None else set())
    for key in earlier:
        if key not in written:
            dest.delete(key)
    summary.replaced = len(earlier)
    return summary
