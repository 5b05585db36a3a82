"""Scoring commands: classify images (files, folders, S3 prefixes), and the sharded batch a DAG runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from model.cli.invocation import services
from model.cli.output import Bars, command, emit, err
from model.cli.training import ModelOpt
from model.core.errors import NotFoundError, SproutError

SourcesArg = Annotated[list[str], typer.Argument(
    help="Image files, folders (their images, recursively) or s3://bucket/prefix.")]
LowOpt = Annotated[float, typer.Option("--low-confidence", min=0.0, max=1.0,
                                       help="The report lists the images below this confidence.")]
BinsOpt = Annotated[int, typer.Option("--bins", min=1, max=100, help="Bins of the report's confidence histogram.")]
FormatOpt = Annotated[str | None, typer.Option(
    "--format", help="jsonl or csv (default: the output file's suffix, else jsonl).")]


def predict(
    sources: SourcesArg,
    model: ModelOpt = "champion",
    output: Annotated[str | None, typer.Option("--output", "-o", help=(
        "Write the results (path, label, confidence, probabilities, model_version, error, abstained, unfamiliar) "
        "and a report instead "
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

    with command():
        svc = services()
        part = Shard.parse(shard) if shard else None
        out = Output(output, svc.settings, fmt=fmt) if output else None
        if part and out and out.is_file:
            raise SproutError("--shard writes into a folder or S3 prefix: give --output one, not a file.")
        paths = [p for p in list_images(sources, svc.settings, skip=out.owns if out else lambda _p: False)
                 if part is None or part.holds(p)]
        info, model_file = svc.model_file(model)
        with Bars("scoring") as bars:
            rows = score_paths(paths, model=model_file, version=info.version, settings=svc.settings,
                               workers=workers, max_pixels=svc.settings.max_image_pixels,
                               progress=bars.step(len(paths)))
        if out is None:
            emit({"model_version": info.version, "predictions": [_legacy_row(r) for r in rows]},
                 _print_predictions)
            return
        results = out.write_rows(rows, part)
        if part is not None:
            emit({"model_version": info.version, "shard": str(part), "n": len(rows),
                  "errors": sum(1 for r in rows if r["error"]), "results": results},
                 lambda d: err.print(f"shard {d['shard']}: {d['n']} images ({d['errors']} errors) → {d['results']}"))
            return
        report = build_report(rows, low_confidence_below=low_confidence, bins=bins)
        report.results = results
        report = publish_report(report, out, svc.registry, source=" ".join(sources))
        emit(report.summary(), _batch_lines)


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as `sprout predict IMAGE...` has always printed it (``file``; ``error`` only when failed), with
    ``abstained`` and ``unfamiliar`` since issue 23."""
    if row["error"]:
        return {"file": row["path"], "error": row["error"]}
    return {"file": row["path"], **{k: row[k] for k in ("label", "confidence", "probabilities", "abstained",
                                                        "unfamiliar", "model_version")}}


def _print_predictions(data: dict[str, Any]) -> None:
    console = Console()
    for r in data["predictions"]:
        if "label" in r:
            doubts = [word for word, flag in (("not sure", r.get("abstained")), ("unfamiliar", r.get("unfamiliar")))
                      if flag]
            console.print(f"{r['file']}: {r['label']} {r['confidence']:.3f}"
                          + (f" ({', '.join(doubts)})" if doubts else ""))
        else:
            console.print(f"{r['file']}: {r['error']}")


def _batch_lines(d: dict[str, Any]) -> None:
    conf = d["mean_confidence"]
    err.print(f"model v{d['model_version']}: {d['scored']} images scored, {d['errors']} errors, "
              f"{d['low_confidence']} below {d['low_confidence_below']:g}, {d.get('abstained', 0)} not sure, "
              f"{d.get('unfamiliar', 0)} unfamiliar; mean confidence "
              f"{'-' if conf is None else f'{conf:.3f}'}; {d['counts']}")
    err.print(f"results {d['results']}, report {d['files'].get('report')}"
              + (f", MLflow run {d['mlflow_run_id']}" if d.get("mlflow_run_id") else ""))


def batch_plan(
    sources: SourcesArg,
    shards: Annotated[int, typer.Option(min=1, max=1024, help="Number of shards.")] = 4,
    model: ModelOpt = "champion",
) -> None:
    """List the images a batch prediction would score, per shard, and pin the model version (a DAG step)."""
    from model.serving.batch import list_images, shard_sizes

    with command():
        svc = services()
        paths = list_images(sources, svc.settings)
        if not paths:
            raise NotFoundError(f"No images under {' '.join(sources)}")
        sizes = shard_sizes(paths, shards)
        version = svc.registry.resolve(model).version
        emit({"model_version": version, "n": len(paths),
              "shards": [{"shard": f"{i}/{shards}", "n": n} for i, n in enumerate(sizes)]},
             lambda d: err.print(f"{d['n']} images in {len(d['shards'])} shards "
                                 f"{[s['n'] for s in d['shards']]}, model v{d['model_version']}"))


def batch_report(
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

    with command():
        svc = services()
        out = Output(output, svc.settings, fmt=fmt)
        count, rows = merge_shards(out, shards)
        report = build_report(rows, low_confidence_below=low_confidence, bins=bins)
        report.results, report.shards = out.url(out.results_name), count
        emit(publish_report(report, out, svc.registry, key=key).summary(), _batch_lines)
