"""Report commands: where the loop stands (samples, retrain progress, champion) and drift of live traffic."""

from __future__ import annotations

from typing import Any

from model.cli.data import champion_version
from model.cli.invocation import services
from model.cli.output import command, emit, err, print_pairs


def status() -> None:
    """Sample counts, retrain progress and the champion model."""
    from model.reports.status import collect_status

    with command():
        emit(collect_status(services()).to_dict(), print_pairs)


def drift() -> None:
    """Drift of live traffic: recent predictions against the champion's training set (embeddings, confidence)."""
    from model.monitoring.drift import drift_report

    with command():
        svc = services()
        emit(drift_report(svc, champion_version(svc)).to_dict(), _drift_line)


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
