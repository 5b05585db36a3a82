"""Suspect labels: with 10% of the shared set's labels flipped, Cleanlab on the run's out-of-fold (train+val) and
out-of-sample (test) probabilities puts at least 80% of the flipped samples among the top 2 × (number flipped) of
``sprout label-issues``; labels flipped in the test split are suspected too; a run recorded before the test part
still ranks its out-of-fold samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from db import queries
from db.models import SampleSource, Split
from model.core.settings import Settings
from model.data.importer import find_labeled_files
from model.data.samples import add_sample
from model.learning.pipeline import train_candidate
from model.learning.promotion import train
from model.review.actions import relabel_sample
from model.review.label_issues import find_label_issues, forget_run_suspects
from model.runtime.services import Services
from tests.utils.datasets import colour_dataset
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
            given = labels[(labels.index(label) + 1) % len(labels)] if i in flip else label
            sample, _ = add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT,
                                   label=given)
            if i in flip:
                flipped_ids.add(sample.id)
    outcome = train(svc, force=True)  # the gate may refuse a model trained on noisy labels: the run still counts
    assert not outcome.skipped
    top = find_label_issues(svc, limit=2 * len(flip))
    found = flipped_ids & {issue.id for issue in top}
    assert len(found) >= 0.8 * len(flip), (len(found), len(flip), len(top))
    scores = [issue.score for issue in top]
    assert scores == sorted(scores, reverse=True)  # most suspect first

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(tmp_path / "home"), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    proc = subprocess.run([SPROUT, "label-issues", "--limit", "5", "--json"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    issues = json.loads(proc.stdout.strip().splitlines()[-1])["issues"]
    assert [i["id"] for i in issues] == [i.id for i in top[:5]]
    assert set(issues[0]) == {"id", "sha256", "label", "suggested_label", "score", "flagged", "evidence"}


@pytest.fixture(scope="module")
def mislabelled_test_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Services, dict[int, str]]:
    """A home with a three-colour set approved, the first test-split sample of each colour relabelled to another
    colour by an admin, and a candidate trained on it: ``(services, {flipped sample id: true label})``."""
    colours = colour_dataset(tmp_path_factory.mktemp("colours"), per_label=30)
    svc = migrated_services(Settings(_env_file=None, home=tmp_path_factory.mktemp("home"),  # type: ignore[call-arg]
                                     candidate_backbones="efficientnet_lite0"))
    files = find_labeled_files(colours)
    labels = sorted({label for label, _ in files})
    flipped: dict[int, str] = {}
    with svc.session() as session:
        added = [add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT, label=label)[0]
                 for label, path in files]
        firsts = {s.label: s for s in reversed(added) if s.split is Split.TEST}  # each colour's first test sample
        for sample in firsts.values():
            true = sample.label or ""
            relabel_sample(session, svc.store, sample_id=sample.id, reviewer="admin",
                           label=labels[(labels.index(true) + 1) % len(labels)])
            flipped[sample.id] = true
    assert len(flipped) == 3
    outcome = train_candidate(svc, force=True)
    assert not outcome.skipped and outcome.counts["test"] > len(flipped)
    return svc, flipped


def test_labels_flipped_in_the_test_split_are_suspected(mislabelled_test_split: tuple[Services, dict[int, str]]
                                                         ) -> None:
    """Test samples are judged by the final head trained on train+val (out-of-sample), ranked with the rest: the
    three flipped test labels are the top suspects, each with its true colour suggested."""
    svc, flipped = mislabelled_test_split
    top = find_label_issues(svc, limit=2 * len(flipped))
    assert {i.id for i in top[:len(flipped)]} == set(flipped), [(i.id, i.label, i.evidence, i.score) for i in top]
    for issue in top[:len(flipped)]:
        assert issue.evidence == "out_of_sample" and issue.suggested_label == flipped[issue.id] and issue.score > 0.5
    assert [i.score for i in top] == sorted((i.score for i in top), reverse=True)
    with svc.session() as session:
        run = queries.last_succeeded_run(session)
        assert run is not None and run.out_of_fold is not None
        tested = {s.sample_id for s in run.samples if s.split is Split.TEST}
        assert set(run.out_of_fold["out_of_sample"]["sample_ids"]) == tested
        assert len(run.out_of_fold["sample_ids"]) == len(run.samples) - len(tested)  # train+val: out-of-fold


def test_a_run_recorded_before_the_test_part_still_ranks_its_out_of_fold_samples(
        mislabelled_test_split: tuple[Services, dict[int, str]]) -> None:
    svc, flipped = mislabelled_test_split
    with svc.session() as session:
        run = queries.last_succeeded_run(session)
        assert run is not None and run.out_of_fold is not None
        stored = dict(run.out_of_fold)
        run.out_of_fold = {key: value for key, value in stored.items() if key != "out_of_sample"}
        session.commit()
        forget_run_suspects()  # a run's evidence never changes in the product: each process ranks it once
        try:
            issues = find_label_issues(svc, limit=500)
            assert len(issues) == len(stored["sample_ids"])
            assert {i.evidence for i in issues} == {"out_of_fold"} and not set(flipped) & {i.id for i in issues}
        finally:
            run.out_of_fold = stored
            session.commit()
            forget_run_suspects()
