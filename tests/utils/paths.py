"""Paths the tests share. The shared data set lives beside the repo, never inside it."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATASET = (REPO_ROOT / ".." / "shared" / "datasets" / "dandelion-grass").resolve()
SCENES = (REPO_ROOT / ".." / "shared" / "datasets" / "scenes").resolve()  # 6 classes x 60 photos, 150x150


def require_dataset() -> Path:
    """The shared data set; a missing one fails the test (it is never skipped)."""
    assert DATASET.is_dir(), f"shared data set missing at {DATASET}"
    return DATASET


def shared_graphs() -> dict[str, str]:
    """``SPROUT_BACKBONE_GRAPHS`` of the session (tests/conftest.py): for environments built without the test
    process's ``SPROUT_*`` settings, so that their homes reuse the backbone graphs exported once."""
    return {"SPROUT_BACKBONE_GRAPHS": os.environ["SPROUT_BACKBONE_GRAPHS"]}
