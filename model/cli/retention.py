"""``sprout gc``: report what the retention rules would delete (rows, objects, bytes), and with ``--apply`` delete
it (model/data/retention.py; the rules and their settings: docs/operations/retention.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from model.cli.invocation import services
from model.cli.output import command, emit, err


def gc(
    apply: Annotated[bool, typer.Option(
        "--apply", help="Delete what the rules find (without it, only report: nothing changes).")] = False,
    max_orphans: Annotated[int, typer.Option(
        min=0, help="Delete orphan images only up to this many; more are refused (another database, a restored "
                    "backup?) until checked and raised.")] = 1000,
) -> None:
    """Enforce the retention rules: expired predictions, revocations, rollout observations, run lineage, old
    rejected samples, orphan embeddings and objects. Reports only unless --apply."""
    from dataclasses import replace

    from model.data.retention import RetentionPolicy, collect

    with command():
        svc = services()
        with svc.session() as session:
            policy = replace(RetentionPolicy.from_settings(svc.settings), max_orphans=max_orphans)
            report = collect(session, svc.store, policy, apply=apply)
        emit(report.to_dict(), _lines)


def _lines(d: dict[str, Any]) -> None:
    for rule in d["rules"]:
        done = f", deleted {rule['deleted']}" if d["applied"] else ""
        refused = f" [refused: {rule['refused']}]" if rule["refused"] else ""
        err.print(f"{rule['name']}: {rule['found']} found ({rule['bytes']} bytes){done}{refused} — {rule['rule']}")
    if not d["applied"] and d["found"]:
        err.print("report only: run `sprout gc --apply` to delete")
