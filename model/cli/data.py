"""Data commands: import and export samples, start from a seed data set, and check the data's quality (suspect
labels, near-duplicates, the database against the object store)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from model.cli.invocation import services
from model.cli.output import Bars, command, emit, err
from model.cli.training import outcome_line

if TYPE_CHECKING:
    from model.data.importer import ImportSummary
    from model.runtime.services import Services

SourceArg = Annotated[str, typer.Argument(help="Folder with one sub-folder per label, or s3://bucket/prefix.")]


def import_(source: SourceArg) -> None:
    """Import a folder-per-label tree (local or under an S3 prefix) as approved samples (dedup by content hash)."""
    with command():
        summary = _import_with_progress(services(), source)
        emit(summary.to_dict(), lambda d: err.print(
            f"added {d['added']} {d['added_by_label']}, skipped {d['skipped_duplicates']} duplicates, "
            f"{len(d['errors'])} errors"))


def _import_with_progress(svc: Services, source: str | Path) -> ImportSummary:
    from model.data.importer import import_directory, local_tree

    with local_tree(source, svc.settings) as directory, svc.session() as session, Bars("importing") as bars:
        summary = import_directory(session, svc.store, directory, progress=bars.iterate)
    for file, error in summary.errors:
        err.print(f"[yellow]skipped[/yellow] {file}: {error}")
    return summary


def bootstrap(
    source: Annotated[str | None, typer.Argument(
        help="Data set folder or s3://bucket/prefix (default: SPROUT_SEED_DATASET).")] = None,
) -> None:
    """Import an initial data set and train the first model when none exists yet."""
    from model.learning.promotion import train

    with command():
        svc = services()
        summary = _import_with_progress(svc, source or svc.settings.seed_dataset)
        champion = svc.registry.champion()
        with Bars():
            outcome = None if champion else train(svc, force=True)
        data = {"import": summary.to_dict(), "train": outcome.to_dict() if outcome else None,
                "champion": outcome.version if outcome and outcome.promoted else (champion and champion.version)}

        def human(d: dict[str, Any]) -> None:
            imp = d["import"]
            err.print(f"imported {imp['added']} new samples ({imp['skipped_duplicates']} already known)")
            if d["train"]:
                outcome_line(d["train"])
            else:
                err.print(f"champion already exists: version {d['champion']}; nothing trained")

        emit(data, human)


def champion_version(svc: Services) -> str | None:
    """The champion's version, None before the first promotion."""
    champion = svc.registry.champion()
    return str(champion.version) if champion else None


def export_dataset(
    dest: Annotated[str, typer.Argument(help="Folder, or s3://bucket/prefix, to write the export to.")],
    version: Annotated[int | None, typer.Option(
        min=1, help="Exactly what this registered version trained and was tested on, with the labels it used.")] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings", help="Also write embeddings.parquet: the cached vectors of the run's backbone.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a previous export at DEST (refused when DEST holds other files).")] = False,
) -> None:
    """Write the approved samples as a folder-per-label tree with manifest.csv (`sprout import` reads it back)."""
    from model.data import export

    with command():
        svc = services()
        target, name = export.open_destination(dest, svc.settings)
        with svc.session() as session, Bars("exporting") as bars:
            summary = export.export_dataset(
                session, svc.store, target, dest_name=name, version=None if version is None else str(version),
                embeddings=embeddings, champion_version=lambda: champion_version(svc), overwrite=overwrite,
                progress=bars.iterate)
        emit(summary.to_dict(), _export_line)


def _export_line(d: dict[str, Any]) -> None:
    what = f"version {d['version']}'s samples" if d["version"] else "approved samples"
    err.print(f"exported {d['samples']} {what} {d['by_label']} to {d['dest']}")
    if d["embeddings"]:
        e = d["embeddings"]
        err.print(f"embeddings ({e['backbone']}): {e['rows']} rows, {e['missing']} samples not embedded")


def label_issues(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, most suspect first.")] = 50,
) -> None:
    """Approved samples whose label is probably wrong, most suspect first (Cleanlab on the last run's out-of-fold
    and, for the test split, out-of-sample probabilities)."""
    from model.review.label_issues import find_label_issues

    with command():
        issues = find_label_issues(services(), limit=limit)
        emit({"issues": [i.to_dict() for i in issues]}, _issue_lines)


def _issue_lines(data: dict[str, Any]) -> None:
    for i in data["issues"]:
        notes = (", flagged" if i["flagged"] else "") + (", test split" if i["evidence"] == "out_of_sample" else "")
        err.print(f"#{i['id']} {i['label']} → probably {i['suggested_label']} (score {i['score']:.3f}{notes})")
    if not data["issues"]:
        err.print("no suspect labels")


def fsck(
    repair: Annotated[bool, typer.Option(help="Repair half-done moves.")] = True,
    grace_minutes: Annotated[float, typer.Option(
        help="Keep copies younger than this: they may be moves in flight (safe while the API serves).")] = 15,
) -> None:
    """Check the database against the object store; repair half-done moves, report orphans."""
    from datetime import timedelta

    from model.data.fsck import fsck as run_fsck

    with command():
        svc = services()
        with svc.session() as session:
            report = run_fsck(session, svc.store, repair=repair, grace=timedelta(minutes=grace_minutes))
        emit(report.to_dict(), lambda d: err.print(
            f"checked {d['checked']} samples: restored {len(d['restored'])}, removed "
            f"{len(d['removed_leftovers'])} leftovers, {len(d['missing'])} missing, {len(d['orphans'])} orphans"))
        if not report.ok:
            raise typer.Exit(1)


def dedup(
    report: Annotated[bool, typer.Option("--report", help="Only list: store no pHash, link no group.")] = False,
) -> None:
    """Near-duplicate groups of the existing samples, and the groups that straddle splits (leaks)."""
    from db.queries import last_promoted_run
    from model.data.near_duplicates import dedup_report

    with command():
        svc = services()
        with svc.session() as session:
            run = last_promoted_run(session)
            backbone = run.backbone if run is not None else svc.settings.backbone
            found = dedup_report(session, svc.store, svc.near_duplicates.rule, backbone=backbone,
                                 report_only=report)
        emit(found.to_dict(), _dedup_lines)


def _dedup_lines(d: dict[str, Any]) -> None:
    err.print(f"checked {d['checked']} samples ({d['without_embedding']} without a {d['backbone']} embedding): "
              f"{len(d['groups'])} near-duplicate groups, {len(d['leaks'])} across splits")
    for group in d["groups"]:
        members = ", ".join(f"#{m['id']} {m['split']} {m['label'] or m['status']}" for m in group)
        leak = " [leak]" if len({m["split"] for m in group}) > 1 else ""
        Console().print(f"{members}{leak}")
