"""Paths the tests share. The shared data set lives beside the repo, never inside it."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASET = (REPO_ROOT / ".." / "shared" / "datasets" / "dandelion-grass").resolve()


def require_dataset() -> Path:
    """The shared data set; a missing one fails the test (it is never skipped)."""
    assert DATASET.is_dir(), f"shared data set missing at {DATASET}"
    return DATASET
