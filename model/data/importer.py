"""Import a folder-per-label tree as approved samples (``sprout import``, ``sprout bootstrap``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from db.models import SampleSource
from model.core.errors import InvalidLabelError, NotFoundError, SproutError
from model.data.labels import check_label
from model.data.samples import add_sample
from model.data.storage import ObjectStore

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class ImportSummary:
    """What ``sprout import`` did."""

    added: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
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
    for label_name in {label for label, _ in files}:
        try:
            check_label(label_name)
        except InvalidLabelError as exc:
            summary.errors.append((label_name + "/", str(exc)))
    iterator: Iterable[tuple[str, Path]] = progress(files, len(files)) if progress else files
    for label, path in iterator:
        rel = str(path.relative_to(root))
        try:
            _, created = add_sample(session, store, data=path.read_bytes(), source=SampleSource.IMPORT,
                                    label=label)
        except (SproutError, OSError) as exc:
            if not isinstance(exc, InvalidLabelError):
                summary.errors.append((rel, str(exc)))
            continue
        if created:
            summary.added[label] += 1
        else:
            summary.duplicates += 1
    return summary
