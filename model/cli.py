"""The ``sprout`` command line. With ``--json`` (before or after the command name) every command prints exactly one
JSON object on stdout."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from db.migrate import SchemaOutOfDateError
from model.core.errors import NotFoundError, SproutError
from model.core.settings import get_settings

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
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
users_app = typer.Typer(help="Reviewer accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
mlflow_app = typer.Typer(help="Logins on the MLflow server (run with MLflow's admin login).", no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow")

err = Console(stderr=True)

# Exit codes: 0 ok, 1 a failure (a Sprout error, with its message), 2 a usage error (Typer's), and:
EXIT_GATE_REFUSED = 3  # `sprout train` trained a candidate and the gate refused it (nothing was promoted)
_state: dict[str, Any] = {"json": False, "out": sys.stdout}


@app.callback()
def main(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Sprout: continuous-training image classifier."""
    _state["json"] = json_output
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@contextlib.contextmanager
def _command() -> Iterator[None]:
    """Keep stdout clean for the JSON answer and turn Sprout errors into a message and exit code 1."""
    real_stdout = _state["out"] = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except (SproutError, SchemaOutOfDateError) as exc:
        if _state["json"]:
            real_stdout.write(json.dumps({"error": str(exc), "type": type(exc).__name__}) + "\n")
            real_stdout.flush()
        else:
            err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _emit(data: dict[str, Any], human: Callable[[dict[str, Any]], None]) -> None:
    if _state["json"]:
        _state["out"].write(json.dumps(data, default=_json_default) + "\n")
        _state["out"].flush()
    else:
        human(data)


def _bars_shown() -> bool:
    """Progress bars only on a terminal, never with --json."""
    return sys.stderr.isatty() and not _state["json"]


@contextlib.contextmanager
def _progress_bars() -> Iterator[None]:
    """Show the progress of long steps (``model.core.progress``) as bars on stderr, when ``_bars_shown``."""
    from model.core.progress import reporting

    if not _bars_shown():
        yield
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err) as bars:

        def start(what: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(what, total=total)
            return lambda done: bars.advance(task, done)

        with reporting(start):
            yield


def _services() -> Any:
    from model.runtime.services import Services

    return Services.from_settings(get_settings())


def _print_pairs(data: dict[str, Any]) -> None:
    console = Console()
    for key, value in data.items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
        console.print(f"[bold]{key}[/bold]: {shown}")


SourceArg = Annotated[str, typer.Argument(help="Folder with one sub-folder per label, or s3://bucket/prefix.")]


@app.command("import")
def import_(source: SourceArg) -> None:
    """Import a folder-per-label tree (local or under an S3 prefix) as approved samples (dedup by content hash)."""
    with _command():
        summary = _import_with_progress(_services(), source)
        _emit(summary.as_dict(), lambda d: err.print(
            f"added {d['added']} {d['added_by_label']}, skipped {d['skipped_duplicates']} duplicates, "
            f"{len(d['errors'])} errors"))


def _import_with_progress(svc: Any, source: str | Path) -> Any:
    from model.data.importer import import_directory, local_tree

    with local_tree(source, svc.settings) as directory, svc.session() as session, _progress("importing") as bar:
        summary = import_directory(session, svc.store, directory,
                                   progress=lambda items, total: bar.track(items, total=total))
    for file, error in summary.errors:
        err.print(f"[yellow]skipped[/yellow] {file}: {error}")
    return summary


@app.command()
def bootstrap(
    source: Annotated[str | None, typer.Argument(
        help="Data set folder or s3://bucket/prefix (default: SPROUT_SEED_DATASET).")] = None,
) -> None:
    """Import an initial data set and train the first model when none exists yet."""
    from model.learning.promotion import train

    with _command():
        svc = _services()
        summary = _import_with_progress(svc, source or svc.settings.seed_dataset)
        champion = svc.registry.champion()
        with _progress_bars():
            outcome = None if champion else train(svc, force=True)
        data = {"import": summary.as_dict(), "train": outcome.as_dict() if outcome else None,
                "champion": outcome.version if outcome and outcome.promoted else (champion and champion.version)}

        def human(d: dict[str, Any]) -> None:
            imp = d["import"]
            err.print(f"imported {imp['added']} new samples ({imp['skipped_duplicates']} already known)")
            if d["train"]:
                _outcome_line(d["train"])
            else:
                err.print(f"champion already exists: version {d['champion']}; nothing trained")

        _emit(data, human)


@app.command()
def status() -> None:
    """Sample counts, retrain progress and the champion model."""
    from model.reports.status import collect_status

    with _command():
        _emit(collect_status(_services()).as_dict(), _print_pairs)


def _outcome_line(d: dict[str, Any]) -> None:
    for warning in d.get("warnings") or []:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if d["skipped"]:
        err.print(f"training skipped: {d['reason']}")
        return
    acc = (d.get("metrics") or {}).get("accuracy")
    err.print(f"run {d['run_id']} ({d['backbone']}): test accuracy {acc}, gate "
              f"{'passed' if d['gate'] and d['gate']['passed'] else 'refused'}: {d['gate'] and d['gate']['reason']}")
    err.print(f"version {d['version']} promoted" if d["promoted"] else "not promoted")


@app.command("label-issues")
def label_issues_cmd(
    limit: Annotated[int, typer.Option(min=1, help="At most this many, most suspect first.")] = 50,
) -> None:
    """Approved samples whose label is probably wrong (Cleanlab on the last run's out-of-fold probabilities)."""
    from model.reports.label_issues import find_label_issues

    with _command():
        issues = find_label_issues(_services(), limit=limit)
        _emit({"issues": [i.as_dict() for i in issues]}, _issue_lines)


def _issue_lines(data: dict[str, Any]) -> None:
    for i in data["issues"]:
        err.print(f"#{i['id']} {i['label']} → probably {i['suggested_label']} (score {i['score']:.3f})")
    if not data["issues"]:
        err.print("no suspect labels")


@app.command("drift")
def drift_cmd() -> None:
    """Drift of live traffic: recent predictions against the champion's training set (embeddings, confidence)."""
    from model.reports.drift import drift_report

    with _command():
        svc = _services()
        _emit(drift_report(svc, _champion_version(svc)).as_dict(), _drift_line)


def _drift_line(d: dict[str, Any]) -> None:
    if d["drift_score"] is not None:
        err.print(f"{'DRIFTED' if d['drifted'] else 'no drift'}: {d['method']} {d['drift_score']:.4f} "
                  f"(threshold {d['threshold']:.4f}) over {d['n']} predictions of version {d['model_version']}; "
                  f"novel {d['novel_share']:.0%}")
    conf, ref = d["mean_confidence"], d["reference_mean_confidence"]
    err.print(f"mean confidence {'-' if conf is None else f'{conf:.3f}'} "
              f"(test set {'-' if ref is None else f'{ref:.3f}'})")
    if d["reason"]:
        err.print(d["reason"])


@app.command("train")
def train_cmd(
    force: Annotated[bool, typer.Option("--force", help="Train even with few new samples.")] = False,
    backbone: Annotated[str | None, typer.Option(
        help="Train only this backbone's candidate (default: every one in SPROUT_CANDIDATE_BACKBONES).")] = None,
) -> None:
    """Train a candidate per backbone, keep the best by cross-validated log loss, gate it against the champion
    and promote it if it passes (exit code 3 when the gate refuses it)."""
    from model.learning.promotion import train

    with _command(), _progress_bars():
        outcome = train(_services(), force=force, backbone_name=backbone)
        _emit(outcome.as_dict(), _outcome_line)
    if outcome.gate is not None and not outcome.gate.passed:
        raise typer.Exit(EXIT_GATE_REFUSED)


@app.command("retrain-check")
def retrain_check_cmd(
    key: Annotated[str | None, typer.Option("--key", help="The trigger (e.g. Airflow run id) asking.")] = None,
) -> None:
    """Count samples approved since the last training run and say whether a retrain is due."""
    from model.learning.promotion import retrain_check

    with _command():
        _emit(retrain_check(_services(), trigger_key=key).as_dict(), lambda d: err.print(d["reason"]))


@app.command("assess-candidate")
def assess_candidate_cmd(
    backbone: Annotated[str, typer.Option(help="The backbone whose candidate to cross-validate.")],
) -> None:
    """Embed (cached) and cross-validate one backbone's candidate on the approved samples; records no run."""
    from model.learning.pipeline import assess

    with _command(), _progress_bars():
        _emit(assess(_services(), backbone), lambda d: err.print(
            f"{d['backbone']}: cross-validated accuracy {d['accuracy']:.4f}, log loss {d['log_loss']:.4f}"))


@app.command("train-candidate")
def train_candidate_cmd(
    force: Annotated[bool, typer.Option("--force", help="Train even with few new samples.")] = False,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key, e.g. the Airflow run id.")] = None,
    backbone: Annotated[str | None, typer.Option(
        help="Train only this backbone's candidate (default: every one in SPROUT_CANDIDATE_BACKBONES).")] = None,
    tried: Annotated[str | None, typer.Option(
        help="JSON list of candidates assessed elsewhere (`assess-candidate` answers), recorded with the run.")] = None,
) -> None:
    """Train and evaluate a candidate and record the gate's decision, without promoting it."""
    from model.learning.pipeline import train_candidate

    with _command(), _progress_bars():
        others = _tried(tried)
        _emit(train_candidate(_services(), force=force, backbone_name=backbone, trigger_key=key,
                              tried=others).as_dict(), _outcome_line)


def _tried(text: str | None) -> list[dict[str, Any]] | None:
    if not text:
        return None
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SproutError(f"--tried is not JSON: {exc}") from None
    needed = {"backbone", "accuracy", "log_loss"}
    if not isinstance(rows, list) or not all(isinstance(r, dict) and needed <= set(r) for r in rows):
        raise SproutError("--tried must be a JSON list of `assess-candidate` answers (backbone, accuracy, log_loss).")
    return rows


RunIdArg = Annotated[int | None, typer.Argument(help="Training run id (default: the latest run).")]


@app.command("gate")
def gate_cmd(run_id: RunIdArg = None) -> None:
    """The gate's decision for a candidate run (exit code 0 either way; read `gate.passed`)."""
    from model.learning.promotion import gate_decision

    with _command():
        _emit(gate_decision(_services(), run_id).as_dict(), _outcome_line)


@app.command("promote")
def promote_cmd(run_id: RunIdArg = None) -> None:
    """Register a gate-passed candidate and make it the champion (safe to repeat)."""
    from model.learning.promotion import promote_run

    with _command():
        _emit(promote_run(_services(), run_id).as_dict(), _outcome_line)


@app.command()
def evaluate(
    directory: Annotated[Path, typer.Argument(help="Folder with one sub-folder per label.")],
    model: Annotated[str, typer.Option("--model", help="'champion' or a version number.")] = "champion",
) -> None:
    """Evaluate a registered model on a folder-per-label tree."""
    from model.learning.evaluation import evaluate_directory
    from model.serving.predictor import Predictor

    with _command():
        info, path = _services().model_file(model)
        predictor = Predictor.load(path, version=info.version)
        _emit(evaluate_directory(predictor, directory), lambda d: err.print(
            f"model v{d['model_version']}: accuracy {d['accuracy']} on {d['n']} images, log loss {d['log_loss']}"))


def _print_predictions(data: dict[str, Any]) -> None:
    console = Console()
    for r in data["predictions"]:
        if "label" in r:
            console.print(f"{r['file']}: {r['label']} {r['confidence']:.3f}")
        else:
            console.print(f"{r['file']}: {r['error']}")


def _progress(what: str) -> Progress:
    """A progress bar on stderr, shown only on a terminal and never with ``--json``."""
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, disable=not _bars_shown())


SourcesArg = Annotated[list[str], typer.Argument(
    help="Image files, folders (their images, recursively) or s3://bucket/prefix.")]
ModelOpt = Annotated[str, typer.Option("--model", help="'champion' or a version number.")]
LowOpt = Annotated[float, typer.Option("--low-confidence", min=0.0, max=1.0,
                                       help="The report lists the images below this confidence.")]
BinsOpt = Annotated[int, typer.Option("--bins", min=1, max=100, help="Bins of the report's confidence histogram.")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="jsonl or csv (default: the output file's suffix, else jsonl).")]


@app.command()
def predict(
    sources: SourcesArg,
    model: ModelOpt = "champion",
    output: Annotated[str | None, typer.Option("--output", "-o", help=(
        "Write the results (path, label, confidence, probabilities, model_version, error) and a report instead "
        "of printing them: FILE.jsonl or FILE.csv, or a folder or s3://bucket/prefix/ (results.jsonl, "
        "report.json, confidence.png)."))] = None,
    fmt: FormatOpt = None,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64,
                                         help="Worker processes, one ONNX Runtime thread each.")] = 1,
    shard: Annotated[str | None, typer.Option(help=(
        "Score only shard I/N of the images (by a hash of the path); with --output, write "
        "shards/results-I-of-N and no report (`sprout batch-report` merges the shards)."))] = None,
    low_confidence: LowOpt = 0.6,
    bins: BinsOpt = 10,
) -> None:
    """Classify images with the champion (or a given version): files, folders and S3 prefixes, in parallel."""
    from model.reports.batch import build_report, publish_report
    from model.serving.batch import Output, Shard, list_images, score_paths

    with _command():
        svc = _services()
        part = Shard.parse(shard) if shard else None
        out = Output(output, svc.settings, fmt=fmt) if output else None
        if part and out and out.is_file:
            raise SproutError("--shard writes into a folder or S3 prefix: give --output one, not a file.")
        paths = [p for p in list_images(sources, svc.settings, skip=out.owns if out else lambda _p: False)
                 if part is None or part.holds(p)]
        info, model_file = svc.model_file(model)
        with _progress("scoring") as bar:
            task = bar.add_task("scoring", total=len(paths))
            rows = score_paths(paths, model=model_file, version=info.version, settings=svc.settings,
                               workers=workers, max_pixels=svc.settings.max_image_pixels,
                               progress=lambda n: bar.advance(task, n))
        if out is None:
            _emit({"model_version": info.version, "predictions": [_legacy_row(r) for r in rows]},
                  _print_predictions)
            return
        results = out.write_rows(rows, part)
        if part is not None:
            _emit({"model_version": info.version, "shard": str(part), "n": len(rows),
                   "errors": sum(1 for r in rows if r["error"]), "results": results},
                  lambda d: err.print(f"shard {d['shard']}: {d['n']} images ({d['errors']} errors) → {d['results']}"))
            return
        report = build_report(rows, low_confidence_below=low_confidence, bins=bins)
        report.results = results
        report = publish_report(report, out, svc.registry, source=" ".join(sources))
        _emit(report.summary(), _batch_lines)


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as `sprout predict IMAGE...` has always printed it (``file``; ``error`` only when failed)."""
    if row["error"]:
        return {"file": row["path"], "error": row["error"]}
    return {"file": row["path"], **{k: row[k] for k in ("label", "confidence", "probabilities", "model_version")}}


def _batch_lines(d: dict[str, Any]) -> None:
    conf = d["mean_confidence"]
    err.print(f"model v{d['model_version']}: {d['scored']} images scored, {d['errors']} errors, "
              f"{d['low_confidence']} below {d['low_confidence_below']:g}; mean confidence "
              f"{'-' if conf is None else f'{conf:.3f}'}; {d['counts']}")
    err.print(f"results {d['results']}, report {d['files'].get('report')}"
              + (f", MLflow run {d['mlflow_run_id']}" if d.get("mlflow_run_id") else ""))


@app.command("batch-plan")
def batch_plan_cmd(
    sources: SourcesArg,
    shards: Annotated[int, typer.Option(min=1, max=1024, help="Number of shards.")] = 4,
    model: ModelOpt = "champion",
) -> None:
    """List the images a batch prediction would score, per shard, and pin the model version (a DAG step)."""
    from model.serving.batch import list_images, shard_sizes

    with _command():
        svc = _services()
        paths = list_images(sources, svc.settings)
        if not paths:
            raise NotFoundError(f"No images under {' '.join(sources)}")
        sizes = shard_sizes(paths, shards)
        version = svc.registry.resolve(model).version
        _emit({"model_version": version, "n": len(paths),
               "shards": [{"shard": f"{i}/{shards}", "n": n} for i, n in enumerate(sizes)]},
              lambda d: err.print(f"{d['n']} images in {len(d['shards'])} shards "
                                  f"{[s['n'] for s in d['shards']]}, model v{d['model_version']}"))


@app.command("batch-report")
def batch_report_cmd(
    output: Annotated[str, typer.Argument(help="The folder or s3://bucket/prefix the shards were written to.")],
    shards: Annotated[int | None, typer.Option(
        min=1, help="How many shards the run had (default: the only count present).")] = None,
    fmt: FormatOpt = None,
    low_confidence: LowOpt = 0.6,
    bins: BinsOpt = 10,
    key: Annotated[str | None, typer.Option(
        "--key", help="Idempotency key (the Airflow run id): a repeat logs into the same MLflow run.")] = None,
) -> None:
    """Merge the shard files of a batch prediction into one results file, write its report next to it and
    log the report to MLflow."""
    from model.reports.batch import build_report, merge_shards, publish_report
    from model.serving.batch import Output

    with _command():
        svc = _services()
        out = Output(output, svc.settings, fmt=fmt)
        count, rows = merge_shards(out, shards)
        report = build_report(rows, low_confidence_below=low_confidence, bins=bins)
        report.results, report.shards = out.url(out.results_name), count
        _emit(publish_report(report, out, svc.registry, key=key).summary(), _batch_lines)


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX file.")],
    model: Annotated[str, typer.Option("--model", help="'champion' or a version number.")] = "champion",
) -> None:
    """Write a registered model's fused ONNX graph to a file."""
    import shutil

    with _command():
        info, path = _services().model_file(model)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, output)
        _emit({"version": info.version, "output": str(output), "bytes": output.stat().st_size},
              lambda d: err.print(f"wrote version {d['version']} to {d['output']} ({d['bytes']} bytes)"))


@app.command("export-dataset")
def export_dataset_cmd(
    dest: Annotated[str, typer.Argument(help="Folder, or s3://bucket/prefix, to write the export to.")],
    version: Annotated[int | None, typer.Option(
        min=1, help="Exactly what this registered version trained and was tested on, with the labels it used.")] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings", help="Also write embeddings.parquet: the cached vectors of the run's backbone.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a previous export at DEST (refused when DEST holds other files).")] = False,
) -> None:
    """Write the approved samples as a folder-per-label tree with manifest.csv (`sprout import` reads it back)."""
    from model.data.export import export_dataset, open_destination

    with _command():
        svc = _services()
        target, name = open_destination(dest, svc.settings)
        with svc.session() as session, _progress("exporting") as bar:
            summary = export_dataset(
                session, svc.store, target, dest_name=name, version=None if version is None else str(version),
                embeddings=embeddings, champion_version=lambda: _champion_version(svc), overwrite=overwrite,
                progress=lambda rows, total: bar.track(rows, total=total))
        _emit(summary.as_dict(), _export_line)


def _champion_version(svc: Any) -> str | None:
    champion = svc.registry.champion()
    return str(champion.version) if champion else None


def _export_line(d: dict[str, Any]) -> None:
    what = f"version {d['version']}'s samples" if d["version"] else "approved samples"
    err.print(f"exported {d['samples']} {what} {d['by_label']} to {d['dest']}")
    if d["embeddings"]:
        e = d["embeddings"]
        err.print(f"embeddings ({e['backbone']}): {e['rows']} rows, {e['missing']} samples not embedded")


@app.command()
def rollback(
    version: Annotated[str | None, typer.Argument(help="Version (default: the previous one).")] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from model.learning.promotion import rollback as do_rollback

    with _command():
        _emit(do_rollback(_services(), version).as_dict(), lambda d: err.print(
            f"champion: version {d['previous']} → {d['champion']}"))


@app.command()
def fsck(
    repair: Annotated[bool, typer.Option(help="Repair half-done moves.")] = True,
    grace_minutes: Annotated[float, typer.Option(
        help="Keep copies younger than this: they may be moves in flight (safe while the API serves).")] = 15,
) -> None:
    """Check the database against the object store; repair half-done moves, report orphans."""
    from datetime import timedelta

    from model.data.fsck import fsck as run_fsck

    with _command():
        svc = _services()
        with svc.session() as session:
            report = run_fsck(session, svc.store, repair=repair, grace=timedelta(minutes=grace_minutes))
        _emit(report.as_dict(), lambda d: err.print(
            f"checked {d['checked']} samples: restored {len(d['restored'])}, removed "
            f"{len(d['removed_leftovers'])} leftovers, {len(d['missing'])} missing, {len(d['orphans'])} orphans"))
        if not report.ok:
            raise typer.Exit(1)


@app.command()
def dedup(
    report: Annotated[bool, typer.Option("--report", help="Only list: store no pHash, link no group.")] = False,
) -> None:
    """Near-duplicate groups of the existing samples, and the groups that straddle splits (leaks)."""
    from db.queries import last_promoted_run
    from model.data.near_duplicates import dedup_report

    with _command():
        svc = _services()
        with svc.session() as session:
            run = last_promoted_run(session)
            backbone = run.backbone if run is not None else svc.settings.backbone
            found = dedup_report(session, svc.store, svc.near_duplicates.rule, backbone=backbone,
                                 report_only=report)
        _emit(found.as_dict(), _dedup_lines)


def _dedup_lines(d: dict[str, Any]) -> None:
    err.print(f"checked {d['checked']} samples ({d['without_embedding']} without a {d['backbone']} embedding): "
              f"{len(d['groups'])} near-duplicate groups, {len(d['leaks'])} across splits")
    for group in d["groups"]:
        members = ", ".join(f"#{m['id']} {m['split']} {m['label'] or m['status']}" for m in group)
        leak = " [leak]" if len({m["split"] for m in group}) > 1 else ""
        Console().print(f"{members}{leak}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest revision."""
    from db.migrate import head_revision, upgrade
    from model.core.security import secure_state_dir

    with _command():
        settings = get_settings()
        secure_state_dir(settings.home)
        upgrade(settings.resolved_database_url,
                split_key=settings.split_key.get_secret_value() if settings.split_key else None)
        secure_state_dir(settings.home)
        _emit({"upgraded": True, "revision": head_revision()},
              lambda d: err.print(f"database is up to date (revision {d['revision']})"))


def _read_password() -> str:
    """From a prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    return sys.stdin.readline().rstrip("\n")


def _user_row(user: Any) -> dict[str, Any]:
    return {"username": user.username, "is_admin": user.is_admin, "is_active": user.is_active,
            "created_at": user.created_at}


UserArg = Annotated[str, typer.Argument(help="User name.")]


@users_app.command("add")
def users_add(
    name: UserArg,
    admin: Annotated[bool, typer.Option("--admin", help="May also promote, roll back and force a retrain.")] = False,
) -> None:
    """Add a reviewer account; the password (≥ 12 characters) comes from a prompt, or from stdin when piped."""
    from model.core.accounts import create_user

    with _command():
        password = _read_password()
        svc = _services()
        with svc.session() as session:
            user = create_user(session, username=name, password=password, is_admin=admin)
            _emit(_user_row(user), lambda d: err.print(f"added {'admin' if d['is_admin'] else 'reviewer'} "
                                                       f"{d['username']}"))


@users_app.command("list")
def users_list() -> None:
    """Every account with its role and whether it is active."""
    from model.core.accounts import list_users

    with _command():
        svc = _services()
        with svc.session() as session:
            rows = [_user_row(u) for u in list_users(session)]

        def human(d: dict[str, Any]) -> None:
            for u in d["users"]:
                role = "admin" if u["is_admin"] else "reviewer"
                Console().print(f"{u['username']}  {role}{'' if u['is_active'] else '  (disabled)'}")

        _emit({"users": rows}, human)


def _change_user(change: Callable[[Any], Any], describe: Callable[[dict[str, Any]], str]) -> None:
    """Run ``change(session)`` (it returns the changed user) and report the account."""
    with _command():
        svc = _services()
        with svc.session() as session:
            user = change(session)
            _emit(_user_row(user), lambda d: err.print(describe(d)))


@users_app.command("disable")
def users_disable(
    name: UserArg,
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False,
) -> None:
    """Disable an account: its tokens stop working at once, and stay refused after --enable."""
    from model.core.accounts import set_active

    _change_user(lambda session: set_active(session, username=name, active=enable),
                 lambda d: f"{d['username']} is {'active' if d['is_active'] else 'disabled'}")


@users_app.command("set-password")
def users_set_password(name: UserArg) -> None:
    """Set a new password (≥ 12 characters), from a prompt or stdin; the account's existing sessions end."""
    from model.core.accounts import set_password

    password = _read_password()
    _change_user(lambda session: set_password(session, username=name, password=password),
                 lambda d: f"password of {d['username']} changed")


@users_app.command("set-admin")
def users_set_admin(
    name: UserArg,
    revoke: Annotated[bool, typer.Option("--revoke", help="Take the admin role away instead.")] = False,
) -> None:
    """Make an account an admin (promote, roll back, force a retrain), or ``--revoke`` it."""
    from model.core.accounts import set_admin

    _change_user(lambda session: set_admin(session, username=name, admin=not revoke),
                 lambda d: f"{d['username']} is {'an admin' if d['is_admin'] else 'a reviewer'}")


@mlflow_app.command("serving-login")
def mlflow_serving_login(name: UserArg) -> None:
    """Create (or reset) the API's MLflow user, with serving's permissions only; password from a prompt or stdin."""
    from model.runtime.mlflow_access import grant_serving_access

    with _command():
        password = _read_password()
        granted = grant_serving_access(get_settings(), name, password)
        _emit(granted, lambda d: err.print(f"MLflow user {d['username']}: {d['experiment']}, {d['registered_model']}"))


if __name__ == "__main__":  # pragma: no cover
    app()
