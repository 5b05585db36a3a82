"""The batch report (model/reports/batch.py): merging the shards of one run, the counts, low-confidence list and
histogram, written beside the results and logged to MLflow once per key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.core.errors import NotFoundError, SproutError
from model.core.settings import Settings
from model.reports.batch import KEY_TAG, build_report, histogram_png, merge_shards, publish_report
from model.serving.batch import Output, Shard, decode_rows, error_row
from model.serving.registry import Registry
from tests.model.serving.test_batch import LABELS, row


def test_merge_needs_every_shard_of_one_run(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    out = Output(str(tmp_path / "out"), settings)
    with pytest.raises(NotFoundError, match="No shard files"):
        merge_shards(out)
    rows = [row(f"/x/{i}.jpg", LABELS[i % 2], 0.5 + i / 20) for i in range(9)]
    csv_out = Output(str(tmp_path / "out"), settings, fmt="csv")
    for i in (0, 2):
        csv_out.write_rows([r for r in rows if Shard(i, 3).holds(r["path"])], Shard(i, 3))
    with pytest.raises(NotFoundError, match=r"Shards \[1\] of 3 are missing"):
        merge_shards(Output(str(tmp_path / "out"), settings))
    csv_out.write_rows([r for r in rows if Shard(1, 3).holds(r["path"])], Shard(1, 3))
    out = Output(str(tmp_path / "out"), settings)  # no --format: the shards' own (csv)
    assert merge_shards(out) == (3, sorted(rows, key=lambda r: r["path"]))
    assert decode_rows((tmp_path / "out" / "results.csv").read_bytes(), "csv") == sorted(rows, key=lambda r: r["path"])
    Output(str(tmp_path / "out"), settings, fmt="csv").write_rows(rows[:2], Shard(0, 1))  # another run's shards
    with pytest.raises(NotFoundError, match="Several sets"):
        merge_shards(Output(str(tmp_path / "out"), settings))
    assert merge_shards(Output(str(tmp_path / "out"), settings), 1)[1] == rows[:2]


def test_report_counts_lists_low_confidence_and_bins() -> None:
    rows = [row("/a.jpg", "grass", 0.95), row("/b.jpg", "dandelion", 0.55), row("/c.jpg", "grass", 0.51),
            row("/d.jpg", "grass", 0.7), error_row("/e.jpg", "cannot read")]
    report = build_report(rows, low_confidence_below=0.6, bins=5)
    assert (report.n, report.scored, report.errors, report.model_version) == (5, 4, 1, "3")
    assert report.counts == {"dandelion": 1, "grass": 3}
    assert [r["path"] for r in report.low_confidence] == ["/c.jpg", "/b.jpg"]  # least confident first
    assert report.histogram == {"edges": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "counts": [0, 0, 2, 1, 1]}
    assert report.mean_confidence == pytest.approx((0.95 + 0.55 + 0.51 + 0.7) / 4)
    assert report.error_examples == [{"path": "/e.jpg", "error": "cannot read"}]
    summary = report.summary()
    assert summary["low_confidence"] == 2 and "error_examples" not in summary
    assert histogram_png(report).startswith(b"\x89PNG")
    with pytest.raises(SproutError, match="mix model versions"):
        build_report([row("/a.jpg", "grass", 0.9, "1"), row("/b.jpg", "grass", 0.9, "2")])
    empty = build_report([error_row("/e.jpg", "gone")])
    assert empty.scored == 0 and empty.mean_confidence is None and sum(empty.histogram["counts"]) == 0


def test_the_report_is_written_beside_the_results_and_logged_once_per_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    registry = Registry.from_settings(settings)
    out = Output(str(tmp_path / "out" / "scores.jsonl"), settings)
    rows = [row(f"/x/{i}.jpg", LABELS[i % 3 == 0], 0.5 + i / 25, abstained=i < 5, unfamiliar=i == 11)
            for i in range(12)]
    report = build_report(rows)
    assert (report.abstained, report.unfamiliar) == (5, 1)
    report.results = out.write_rows(rows)
    first = publish_report(report, out, registry, key="manual__2026-01-01T00:00:00+00:00", source="/x")
    written = json.loads((tmp_path / "out" / "scores.report.json").read_text())
    assert written["counts"] == {"dandelion": 8, "grass": 4} and written["mlflow_run_id"] == first.mlflow_run_id
    assert written["low_confidence"] == first.low_confidence and len(written["low_confidence"]) == 3
    assert (tmp_path / "out" / "scores.confidence.png").read_bytes().startswith(b"\x89PNG")
    run = registry.client.get_run(first.mlflow_run_id)
    assert run.data.metrics["scored"] == 12 and run.data.metrics["count_grass"] == 4
    assert run.data.metrics["abstained"] == 5 and run.data.metrics["unfamiliar"] == 1
    assert run.data.tags[KEY_TAG] == "manual__2026-01-01T00:00:00+00:00"
    assert run.data.params["model_version"] == "3"
    experiment = registry.client.get_experiment(run.info.experiment_id)
    assert experiment.name == "sprout-batch"  # not among the training runs
    artifacts = {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    assert {"batch_report.json", "confidence_histogram.png"} <= artifacts
    again = publish_report(build_report(rows, low_confidence_below=0.7), out, registry,
                           key="manual__2026-01-01T00:00:00+00:00")
    assert again.mlflow_run_id == first.mlflow_run_id  # a retried DAG task logs into the same run
    assert registry.client.get_run(first.mlflow_run_id).data.metrics["low_confidence_below"] == 0.7
    assert publish_report(build_report(rows), out, registry).mlflow_run_id != first.mlflow_run_id
    with pytest.raises(SproutError, match="--key"):
        publish_report(build_report(rows), out, registry, key="x' OR '1'='1")


