"""The report of a batch prediction: counts per label (and of abstained and unfamiliar images), the low-confidence
list and a confidence histogram.

Written next to the results (``report.json`` and a PNG of the histogram) and logged as an MLflow run of the
``<experiment>-batch`` experiment (metrics, the report, the histogram). ``merge_shards`` first joins the shard
files that the batch DAG's mapped tasks wrote into one results file.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from model.core.errors import SproutError
from model.serving.batch import Output, Row
from model.serving.registry import Registry

DEFAULT_LOW_CONFIDENCE = 0.6
DEFAULT_BINS = 10
KEY_TAG = "sprout.batch_key"
_KEY = re.compile(r"[A-Za-z0-9_.:+-]{1,250}")
MAX_ERRORS_LISTED = 100


@dataclass
class BatchReport:
    """What a batch prediction found; ``summary()`` is the small part (no lists) for the CLI's answer."""

    model_version: str | None
    n: int
    scored: int
    errors: int
    counts: dict[str, int]
    mean_confidence: float | None
    low_confidence_below: float
    low_confidence: list[dict[str, Any]]  # path, label, confidence; least confident first
    histogram: dict[str, list[float] | list[int]]  # bin edges (bins + 1) and counts per bin
    error_examples: list[dict[str, str]]  # path, error; the first MAX_ERRORS_LISTED
    results: str | None = None
    shards: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # report, histogram: where they were written
    mlflow_run_id: str | None = None
    abstained: int = 0  # scored images the model was not sure of
    unfamiliar: int = 0  # scored images that look like nothing the model was trained on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """Counts and locations, without the lists (a DAG task's XCom stays small)."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("low_confidence", "error_examples")}
        return data | {"low_confidence": len(self.low_confidence)}


def build_report(rows: Sequence[Row], *, low_confidence_below: float = DEFAULT_LOW_CONFIDENCE,
                 bins: int = DEFAULT_BINS) -> BatchReport:
    """The report of scored rows (those with an ``error`` count as errors only)."""
    if not 0 < low_confidence_below <= 1 or bins < 1:
        raise SproutError("The low-confidence threshold must lie in (0, 1] and the histogram needs ≥ 1 bin.")
    scored = [r for r in rows if not r.get("error")]
    failed = [r for r in rows if r.get("error")]
    versions = sorted({str(r["model_version"]) for r in scored if r.get("model_version") is not None})
    if len(versions) > 1:
        raise SproutError(f"The results mix model versions {versions}: score every shard with one --model.")
    confidences = np.array([float(r["confidence"]) for r in scored], dtype=float)
    counts, edges = np.histogram(confidences, bins=bins, range=(0.0, 1.0))
    low = sorted(({"path": r["path"], "label": r["label"], "confidence": float(r["confidence"])}
                  for r in scored if float(r["confidence"]) < low_confidence_below),
                 key=lambda r: (r["confidence"], r["path"]))
    return BatchReport(
        model_version=versions[0] if versions else None, n=len(rows), scored=len(scored), errors=len(failed),
        counts=dict(sorted(Counter(str(r["label"]) for r in scored).items())),
        mean_confidence=float(confidences.mean()) if len(confidences) else None,
        low_confidence_below=low_confidence_below, low_confidence=low,
        histogram={"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]},
        error_examples=[{"path": r["path"], "error": str(r["error"])} for r in failed[:MAX_ERRORS_LISTED]],
        abstained=sum(bool(r.get("abstained")) for r in scored),
        unfamiliar=sum(bool(r.get("unfamiliar")) for r in scored),
    )


def histogram_png(report: BatchReport) -> bytes:
    """The confidence histogram as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = report.histogram["edges"]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        ax.bar(edges[:-1], report.histogram["counts"], width=np.diff(edges), align="edge", edgecolor="white")
        ax.axvline(report.low_confidence_below, color="tab:red", linestyle="--",
                   label=f"low confidence < {report.low_confidence_below:g}")
        ax.set(xlabel="confidence", ylabel="images", xlim=(0, 1),
               title=f"model v{report.model_version}: {report.scored} images, {report.errors} errors")
        ax.legend(loc="upper left")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)


def publish_report(report: BatchReport, output: Output, registry: Registry | None, *,
                   key: str | None = None, source: str | None = None) -> BatchReport:
    """Write ``report.json`` and the histogram PNG next to the results, then log both (and the counts) as an
    MLflow run; with ``key`` (e.g. the DAG run id) a repeat logs into the same run. Returns the report with
    ``files`` and ``mlflow_run_id`` set."""
    if key is not None and not _KEY.fullmatch(key):
        raise SproutError(f"--key may hold letters, digits and _.:+- only: {key!r}")
    png = histogram_png(report)
    report.files = {"report": output.url(output.report_name), "histogram": output.url(output.histogram_name)}
    if registry is not None:
        report.mlflow_run_id = _log(report, png, registry, key=key, source=source)
    output.put(output.histogram_name, png, "image/png")
    output.put(output.report_name, json.dumps(report.to_dict(), indent=1).encode(), "application/json")
    return report


def _log(report: BatchReport, png: bytes, registry: Registry, *, key: str | None, source: str | None) -> str:
    from PIL import Image

    with registry.start_run(f"batch-predict-v{report.model_version}", experiment=f"{registry.experiment}-batch",
                            key=(KEY_TAG, key) if key else None) as run:
        run.set_tags({"sprout.kind": "batch_predict"})
        if not run.resumed:  # params never change; a repeat updates the metrics and the artifacts
            run.log_params({"model_version": report.model_version, "source": source, "results": report.results,
                            "shards": report.shards})
        run.log_metrics({"n": report.n, "scored": report.scored, "errors": report.errors,
                         "low_confidence": len(report.low_confidence),
                         "low_confidence_below": report.low_confidence_below, "abstained": report.abstained,
                         "unfamiliar": report.unfamiliar,
                         **({"mean_confidence": report.mean_confidence} if report.mean_confidence is not None
                            else {}),
                         **{f"count_{label}": n for label, n in report.counts.items()}})
        run.log_dict(report.to_dict() | {"mlflow_run_id": run.run_id}, "batch_report.json")
        run.log_image(Image.open(io.BytesIO(png)), "confidence_histogram.png")
        return run.run_id


def merge_shards(output: Output, shards: int | None = None) -> tuple[int, list[Row]]:
    """Join the shard files under ``output`` into its results file (sorted by path); returns (shards, rows)."""
    count, rows = output.read_shards(shards)
    rows = sorted(rows, key=lambda r: r["path"])
    output.write_rows(rows)
    return count, rows
