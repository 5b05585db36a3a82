"""Taxonomy commands (``sprout labels``): list the labels and their changes; rename, merge or retire a label, as
the admin named by ``--by`` (an active admin account: the audit records the name), then ask Airflow for a retrain."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from model.cli.invocation import services
from model.cli.output import command, emit, err

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from model.data.storage import ObjectStore
    from model.review.taxonomy import TaxonomyChange

labels_app = typer.Typer(help="Labels: rename, merge or retire one (admins; audited, then a retrain).",
                         no_args_is_help=True)

LabelArg = Annotated[str, typer.Argument(help="The label to change.")]
AdminOpt = Annotated[str, typer.Option("--by", help="Your admin account (recorded in the audit).")]


@labels_app.command("list")
def labels_list() -> None:
    """The labels of approved samples with their counts, and the latest changes."""
    from model.review.taxonomy import label_overview

    with command():
        with services().session() as session:
            labels, changes = label_overview(session)
        data = {"labels": [vars(label) for label in labels], "changes": [c.to_dict() for c in changes]}

        def human(d: dict[str, Any]) -> None:
            console = Console()
            for row in d["labels"]:
                console.print(f"{row['label']}  {row['approved']} approved, {row['pending']} pending")
            for change in d["changes"]:
                into = f" → {change['into']}" if change["into"] else ""
                console.print(f"[dim]#{change['id']} {change['kind']} {change['label']}{into} by "
                              f"{change['changed_by']} ({change['approved']} approved, {change['pending']} pending)"
                              "[/dim]")

        emit(data, human)


@labels_app.command("rename")
def labels_rename(label: LabelArg, to: Annotated[str, typer.Argument(help="The new name.")], by: AdminOpt) -> None:
    """Rename a label (its samples' objects move); a new name only: to join an existing label, merge."""
    from model.review.taxonomy import rename_label

    _change(by, lambda session, store: rename_label(session, store, label=label, to=to, admin=by))


@labels_app.command("merge")
def labels_merge(label: LabelArg, into: Annotated[str, typer.Option("--into", help="The existing label that takes "
                                                                                  "the samples.")],
                 by: AdminOpt) -> None:
    """Merge a label into an existing one."""
    from model.review.taxonomy import merge_label

    _change(by, lambda session, store: merge_label(session, store, label=label, into=into, admin=by))


@labels_app.command("retire")
def labels_retire(label: LabelArg, by: AdminOpt) -> None:
    """Retire a label: its approved samples become rejected (kept, audited); it can no longer be approved."""
    from model.review.taxonomy import retire_label

    _change(by, lambda session, store: retire_label(session, store, label=label, admin=by))


def _change(admin: str, change: Callable[[Session, ObjectStore], TaxonomyChange]) -> None:
    """Check the admin, make the change, ask for a retrain, answer with the change."""
    from model.data.label_changes import describe
    from model.review.taxonomy import check_admin, with_retrain

    with command():
        svc = services()
        with svc.session() as session:
            check_admin(session, admin)
            made = with_retrain(svc.settings, change(session, svc.store))

        def human(d: dict[str, Any]) -> None:
            err.print(f"label change #{d['id']}: {describe(made)} ({d['approved']} approved, {d['pending']} pending "
                      f"samples changed)")
            err.print(f"retrain: {d['retrain']['detail']}")

        emit(made.to_dict(), human)
