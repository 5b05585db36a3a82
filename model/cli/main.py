"""The ``sprout`` app: its global options and every command, in the order ``sprout --help`` lists them."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Annotated, Any

import typer

from model.cli import admin, data, labels, reports, retention, rollout, scoring, training
from model.cli.invocation import Invocation, running

# The collector's youngest generation is collected every GC_THRESHOLD allocations (Python's default: 700). A
# command imports MLflow, scikit-learn, scipy and pandas, hundreds of thousands of objects that all live to the
# end, and the default passes over them cost about 1.3 of those imports' 6.5 s (about 5% of a whole retrain
# after 10 approvals). Garbage cycles are still collected: a full retrain peaks at the same resident memory
# (2.09 GB on 700 images; with the collector off it was 2.97 GB).
GC_THRESHOLD = (20_000, 50, 50)


class _Sprout(typer.Typer):
    """The app; ``--json`` anywhere before ``--`` counts as the global option (``sprout train --json`` too)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        gc.set_threshold(*GC_THRESHOLD)
        argv = kwargs.get("args")
        if argv is None and not args:
            kwargs["args"] = hoist_json(sys.argv[1:])
        elif argv is not None:
            kwargs["args"] = hoist_json(list(argv))
        try:
            return super().__call__(*args, **kwargs)
        finally:
            # What the command made lives until the exit: exempt it from the collector, whose last passes over
            # the modules MLflow and scikit-learn bring would add about a second to every command's exit.
            gc.freeze()


def hoist_json(argv: list[str]) -> list[str]:
    """Move every ``--json`` before ``--`` to the front, where the callback reads it."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:end]:
        return argv
    return ["--json", *(a for a in argv[:end] if a != "--json"), *argv[end:]]


app = _Sprout(help="Sprout: continuous-training image classifier.", no_args_is_help=True,
              pretty_exceptions_enable=False)


@app.callback()
def main(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Sprout: continuous-training image classifier."""
    ctx.with_resource(running(Invocation(json=json_output, stdout=sys.stdout)))  # until the command ends
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# One table rather than a decorator in each module: `sprout --help` lists the commands in this order, which
# interleaves the modules (a new command goes where a reader of the help would look for it).
for name, run in (
    ("import", data.import_),
    ("bootstrap", data.bootstrap),
    ("status", reports.status),
    ("label-issues", data.label_issues),
    ("drift", reports.drift),
    ("train", training.train),
    ("retrain-check", training.retrain_check),
    ("assess-candidate", training.assess_candidate),
    ("select-candidate", training.select_candidate),
    ("train-candidate", training.train_candidate),
    ("gate", training.gate),
    ("promote", training.promote),
    ("evaluate", training.evaluate),
    ("predict", scoring.predict),
    ("batch-plan", scoring.batch_plan),
    ("batch-report", scoring.batch_report),
    ("export", training.export),
    ("export-dataset", data.export_dataset),
    ("rollback", training.rollback),
    ("fsck", data.fsck),
    ("dedup", data.dedup),
    ("gc", retention.gc),
):
    app.command(name)(run)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.users_app, name="users")
app.add_typer(labels.labels_app, name="labels")
app.add_typer(rollout.rollout_app, name="rollout")
app.add_typer(admin.mlflow_app, name="mlflow")
