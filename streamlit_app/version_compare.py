"""Two registered versions side by side, as plain rows and sentences (no Streamlit calls): the Models page's
comparison section and the champion dialog render them; tests import them without running a page.

A version is a row of ``GET /models``'s ``versions``: ``version``, ``created_at``, ``run_id``, ``backbone``,
``metrics`` (accuracy, macro F1, log loss, n, per-class precision/recall/F1/support, the confusion matrix) and
``evidence`` (the gate's, with its paired comparison against the champion of its day). Labels are data: a label
only one version knows is "—" for the other.
"""

from __future__ import annotations

from typing import Any

from streamlit_app import ui
from streamlit_app.views.model_quality import class_rows

MISSING = "—"
CLASS_MEASURES = (("precision", "precision"), ("recall", "recall"), ("F1", "F1"))


def version_key(version: str) -> tuple[int, str]:
    """Numeric versions in number order (a non-numeric one sorts first)."""
    return (int(version), "") if version.isdigit() else (-1, version)


def metric(metrics: dict[str, Any] | None, name: str) -> float | None:
    """A numeric metric, or None when missing."""
    value = (metrics or {}).get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def default_pair(versions: list[dict[str, Any]], champion: str | None) -> tuple[str, str] | None:
    """The two versions compared first: the champion (or the newest) against the newest other one."""
    names = sorted((v["version"] for v in versions), key=version_key, reverse=True)
    if len(names) < 2:
        return None
    first = champion if champion is not None and champion in names else names[0]
    return first, next(n for n in names if n != first)


def _points(new: float | None, old: float | None) -> str:
    return MISSING if new is None or old is None else f"{(new - old) * 100:+.1f} points"


def summary_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """One row per measure — accuracy, macro F1, log loss, test images, backbone, run, trained — with each
    version's value and the difference, column "vB − vA" ("—" where a value is missing; empty for text)."""
    ma, mb = a.get("metrics"), b.get("metrics")
    col_a, col_b = f"v{a['version']}", f"v{b['version']}"

    def row(measure: str, left: str, right: str, difference: str = "") -> dict[str, str]:
        return {"": measure, col_a: left, col_b: right, f"{col_b} − {col_a}": difference}

    loss_a, loss_b = metric(ma, "log_loss"), metric(mb, "log_loss")
    n_a, n_b = metric(ma, "n"), metric(mb, "n")
    return [
        row("test accuracy", ui.percent(metric(ma, "accuracy")), ui.percent(metric(mb, "accuracy")),
            _points(metric(mb, "accuracy"), metric(ma, "accuracy"))),
        row("macro F1", ui.percent(metric(ma, "macro_f1")), ui.percent(metric(mb, "macro_f1")),
            _points(metric(mb, "macro_f1"), metric(ma, "macro_f1"))),
        row("log loss (lower is better)", MISSING if loss_a is None else f"{loss_a:.3f}",
            MISSING if loss_b is None else f"{loss_b:.3f}",
            MISSING if loss_a is None or loss_b is None else f"{loss_b - loss_a:+.3f}"),
        row("test images", MISSING if n_a is None else f"{n_a:.0f}", MISSING if n_b is None else f"{n_b:.0f}",
            MISSING if n_a is None or n_b is None else f"{n_b - n_a:+.0f}"),
        row("backbone", a.get("backbone") or MISSING, b.get("backbone") or MISSING),
        row("training run", MISSING if a.get("run_id") is None else str(a["run_id"]),
            MISSING if b.get("run_id") is None else str(b["run_id"])),
        row("trained", ui.when(a.get("created_at")), ui.when(b.get("created_at"))),
    ]


def has_classes(metrics: dict[str, Any] | None) -> bool:
    """Whether the metrics hold per-class values and a confusion matrix (runs from before them do not)."""
    return bool((metrics or {}).get("per_class")) and bool(((metrics or {}).get("confusion_matrix") or {})
                                                           .get("labels"))


def _by_label(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {row["label"]: row for row in class_rows(metrics)} if metrics and has_classes(metrics) else {}


def class_comparison(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per label either version knows (a's order, then b's new ones): precision, recall and F1 of each
    and the difference (b − a) in points. A value is None where undefined (no test image of the label, never
    predicted) or where the version does not know the label; ``known_by`` says which."""
    rows_a, rows_b = _by_label(a.get("metrics")), _by_label(b.get("metrics"))
    va, vb = f"v{a['version']}", f"v{b['version']}"
    rows = []
    for label in [*rows_a, *(label for label in rows_b if label not in rows_a)]:
        left, right = rows_a.get(label, {}), rows_b.get(label, {})
        row: dict[str, Any] = {"label": label}
        for key, name in CLASS_MEASURES:
            old, new = left.get(key), right.get(key)
            row[f"{name} {va}"], row[f"{name} {vb}"] = old, new
            row[f"{name} Δ"] = None if old is None or new is None else round((new - old) * 100, 1)
        row[f"test images {va}"], row[f"test images {vb}"] = left.get("support"), right.get("support")
        row["known by"] = "both" if left and right else va if left else vb
        rows.append(row)
    return rows


def recall_changes(current: dict[str, Any], chosen: dict[str, Any]) -> list[str]:
    """For the champion dialog: each label's test recall, the champion's against the chosen version's, one line
    each (a label only one of them knows says so). Empty when either has no per-class metrics."""
    if not (has_classes(current.get("metrics")) and has_classes(chosen.get("metrics"))):
        return []
    vc, vn = f"v{current['version']}", f"v{chosen['version']}"
    lines = []
    for row in class_comparison(current, chosen):
        old, new, label = row[f"recall {vc}"], row[f"recall {vn}"], row["label"]
        if row["known by"] != "both":
            lines.append(f"{label}: only {row['known by']} knows this label")
        elif old is None or new is None:
            lines.append(f"{label}: recall {ui.percent(new)} against {ui.percent(old)} (no test image for one)")
        else:
            lines.append(f"{label}: recall {ui.percent(new)} against {ui.percent(old)} ({(new - old) * 100:+.1f} "
                         "points)")
    return lines


def metric_difference(version: str, metrics: dict[str, Any] | None, champion: str | None,
                      champion_metrics: dict[str, Any] | None) -> str:
    """What a promotion changes, in words: the chosen version's test accuracy and macro F1 against the champion's
    (each measured on its own run's test images)."""
    parts = []
    for name, label in (("accuracy", "test accuracy"), ("macro_f1", "macro F1")):
        new, old = metric(metrics, name), metric(champion_metrics, name)
        if new is None:
            continue
        versus = "" if old is None else f" against {ui.percent(old)} for v{champion} ({(new - old) * 100:+.1f} points)"
        parts.append(f"{label} {ui.percent(new)}{versus}")
    return f"v{version}: " + ("; ".join(parts) if parts else "no test metrics recorded") + "."


def _paired_words(candidate: dict[str, Any], other: str) -> str | None:
    """The gate's paired comparison of ``candidate`` with ``other`` on the same test images, when its run made
    one (``other`` was the champion then)."""
    evidence = candidate.get("evidence") or {}
    paired = evidence.get("paired")
    if evidence.get("champion_version") != other or not paired:
        return None
    total = sum(int(paired.get(k, 0)) for k in ("both", "candidate_only", "champion_only", "neither"))
    v = candidate["version"]
    return (f"Run {candidate.get('run_id')} did compare them on the same {total} test images (when it gated "
            f"v{v}): both right on {paired.get('both', 0)}, only v{v} on {paired.get('candidate_only', 0)}, only "
            f"v{other} on {paired.get('champion_only', 0)}, neither on {paired.get('neither', 0)}.")


def pairing_note(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Whether the numbers are a paired comparison: each version was measured on the test split of its own
    training run, so versions from different runs were (in general) measured on different test images."""
    if a.get("run_id") is not None and a.get("run_id") == b.get("run_id"):
        return f"v{a['version']} and v{b['version']} come from the same run: measured on the same test images."
    n_a, n_b = metric(a.get("metrics"), "n"), metric(b.get("metrics"), "n")
    sizes = "" if n_a is None or n_b is None else f" ({n_a:.0f} and {n_b:.0f} images)"
    note = (f"Not a paired comparison: v{a['version']} and v{b['version']} were each measured on the test images of "
            f"their own training run{sizes}, which differ as samples are added, relabelled or retired; a "
            "difference of a few points may be the test images, not the model.")
    paired = _paired_words(b, a["version"]) or _paired_words(a, b["version"])
    return note + (f" {paired}" if paired else "")
