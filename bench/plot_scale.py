"""Plot the curves of ``bench/scale.py --json`` runs: per-request p50 against N, and the retrain after 10 approvals.

    python bench/plot_scale.py RUN.json [RUN.json ...] --out docs/operations/scaling-figures

Each JSON file is one run (its N side by side, measured in one process on one machine); a run is drawn as its own
line per figure (runs minutes apart on a shared machine differ by up to 2×, so lines of one run compare, lines of two
runs less so). One panel per stack (embedded, real). Writes ``requests.svg`` and ``retrain.svg`` (reproducible
bytes: no date, fixed ids).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402

REQUESTS = {  # figure in the bench's JSON -> legend
    "GET /admin/samples page p50": "/admin/samples page (offset)",
    "GET /admin/samples next page (cursor) p50": "/admin/samples page (cursor)",
    "queue uncertainty p50": "queue: uncertainty", "queue novelty p50": "queue: novelty",
    "queue diverse p50": "queue: diverse", "queue suspect p50": "queue: suspect",
    "queue newest p50": "queue: newest", "GET /admin/stats p50": "/admin/stats", "GET /models p50": "/models",
    "POST /samples (upload) p50": "upload",
}
RETRAIN = {"sprout train after 10 approvals": "wall time (s)", "sprout train peak RSS": "peak RSS (MB)"}
RUN_STYLES = ["-", "--", ":", "-."]


def load_runs(paths: list[Path]) -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """``{stack: [(run name, results by N), ...]}`` from the bench's JSON files."""
    runs: dict[str, list[tuple[str, list[dict[str, Any]]]]] = defaultdict(list)
    for path in paths:
        body = json.loads(path.read_text())
        results = sorted(body["results"], key=lambda r: r["n"])
        if results:
            runs[body["stack"].split(" ")[0]].append((path.stem, results))
    return dict(runs)


def series(results: list[dict[str, Any]], figure: str) -> tuple[list[int], list[float]]:
    points = [(r["n"], r["values"][figure]) for r in results if figure in r["values"]]
    return [n for n, _ in points], [v for _, v in points]


def plot_requests(runs: dict[str, list[tuple[str, list[dict[str, Any]]]]], out: Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs) + 3, 5.2), squeeze=False, sharey=True)
    colors = dict(zip(REQUESTS, plt.get_cmap("tab10").colors, strict=False))
    named: set[str] = set()  # each figure in the legend once, from the first run that has it
    for ax, (stack, stack_runs) in zip(axes[0], sorted(runs.items()), strict=True):
        for style, (name, results) in zip(RUN_STYLES, stack_runs, strict=False):
            for figure, legend in REQUESTS.items():
                n, values = series(results, figure)
                if n:
                    ax.plot(n, values, style, marker="o", color=colors[figure],
                            label=None if figure in named else legend)
                    named.add(figure)
            ax.plot([], [], style, color="grey", label=f"run {name}")
        ax.set(xscale="log", yscale="log", xlabel="samples (N)", title=f"{stack} stack: p50 per request",
               ylabel="ms")
        ax.grid(True, which="both", alpha=0.3)
    legend: dict[str, Any] = {}  # one entry per figure and per run, whichever panel drew it
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    labels = sorted(legend, key=lambda label: label.startswith("run "))  # the figures, then the runs
    fig.legend([legend[label] for label in labels], labels, fontsize=7, loc="upper left", bbox_to_anchor=(0.8, 0.95))
    save(fig, out / "requests.svg", tight=False)


def plot_retrain(runs: dict[str, list[tuple[str, list[dict[str, Any]]]]], out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (figure, label) in zip(axes, RETRAIN.items(), strict=True):
        for stack, stack_runs in sorted(runs.items()):
            for style, (name, results) in zip(RUN_STYLES, stack_runs, strict=False):
                n, values = series(results, figure)
                if n:
                    ax.plot(n, values, style, marker="o", label=f"{stack}, run {name}")
        ax.set(xscale="log", xlabel="samples (N)", ylabel=label, title=f"sprout train after 10 approvals: {label}")
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    save(fig, out / "retrain.svg")


def save(fig: Any, path: Path, *, tight: bool = True) -> None:
    if tight:
        fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="JSON files written by bench/scale.py --json")
    parser.add_argument("--out", type=Path, required=True, help="folder for requests.svg and retrain.svg")
    args = parser.parse_args()
    matplotlib.rcParams["svg.hashsalt"] = "sprout-scale"  # the same bytes for the same figures
    args.out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(args.runs)
    plot_requests(runs, args.out)
    plot_retrain(runs, args.out)


if __name__ == "__main__":
    main()
