"""Suspect labels: with 10% of the shared set's labels flipped, Cleanlab on the run's out-of-fold probabilities
puts at least 70% of the flipped samples among the top 2 × (number flipped) of ``sprout label-issues``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from db.models import SampleSource
from model.core.settings import Settings
from model.data.importer import find_labeled_files
from model.data.samples import add_sample
from model.learning.promotion import train
from model.review.label_issues import find_label_issues
from tests.utils.paths import require_dataset
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

pytestmark = pytest.mark.slow
SPROUT = str(Path(sys.executable).with_name("sprout"))


def test_flipped_labels_are_found_among_the_top_suspects(tmp_path: Path) -> None:
    svc = migrated_services(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    files = find_labeled_files(require_dataset())
    labels = sorted({label for label, _ in files})
    rng = np.random.default_rng(0)
    flip = set(rng.choice(len(files), len(files) // 10, replace=False).tolist())
    flipped_ids = set()
    with svc.session() as session:
        for i, (label, path) in enumerate(files):
            given = labels[1 - labels.index(label)] if i in flip else label
            sample, _ = add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT,
                                   label=given)
            if i in flip:
                flipped_ids.add(sample.id)
    outcome = train(svc, force=True)  # the gate may refuse a model trained on noisy labels: the run still counts
    assert not outcome.skipped
    top = find_label_issues(svc, limit=2 * len(flip))
    found = flipped_ids & {issue.id for issue in top}
    assert len(found) >= 0.7 * len(flip), (len(found), len(flip), len(top))
    scores = [issue.score for issue in top]
    assert scores == sorted(scores, reverse=True)  # most suspect first

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(tmp_path / "home"), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    proc = subprocess.run([SPROUT, "label-issues", "--limit", "5", "--json"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    issues = json.loads(proc.stdout.strip().splitlines()[-1])["issues"]
    assert [i["id"] for i in issues] == [i.id for i in top[:5]]
    assert set(issues[0]) == {"id", "sha256", "label", "suggested_label", "score"}
