"""The champion is judged on today's labels: after a rename its answers are exactly as right as before, after a
merge its two columns count as one, after a retirement the retired column is gone."""

from __future__ import annotations

import numpy as np
import pytest

from db import queries
from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning.assessment import assess_candidate
from model.learning.embeddings import load_cached
from model.learning.evidence import Metrics
from model.learning.final_evaluation import champion_out_of_fold, evaluate_champion
from model.learning.gate import select_trainable
from model.learning.promotion import train
from model.review.taxonomy import merge_label, rename_label, retire_label
from model.runtime.services import Services
from tests.utils.datasets import scenes_tree
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow
SCENES = dict.fromkeys(("buildings", "forest", "glacier", "mountain", "sea", "street"), 20)
BACKBONE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Services:
    """Version 1 trained on 20 photos of each of the six scene classes."""
    root = tmp_path_factory.mktemp("taxonomy-champion")
    services = migrated_services(Settings(home=root / "home", candidate_backbones=BACKBONE))
    with services.session() as session:
        import_directory(session, services.store, scenes_tree(root / "scenes", SCENES))
    assert train(services, force=True).version == "1"
    return services


def champion_on_all(svc: Services) -> tuple[dict[int, str], list[str], np.ndarray, Metrics]:
    """The champion on every approved sample: ``(label by sample id, the labels its metrics cover, per-sample
    correctness, metrics)``."""
    with svc.session() as session:
        samples = queries.approved_samples(session)
        cached = load_cached(session, BACKBONE, [s.sha256 for s in samples])
        x = np.stack([cached[s.sha256] for s in samples])
        _, metrics, right = evaluate_champion(svc, session, samples, backbone_name=BACKBONE, x_test=x)
    assert metrics is not None and right is not None
    return {s.id: s.label or "" for s in samples}, sorted(metrics.per_class), right, metrics


def paired_out_of_fold(svc: Services) -> tuple[np.ndarray, np.ndarray] | None:
    """A candidate on today's approved samples, paired with version 1's run on the images both cross-validated."""
    with svc.session() as session:
        samples, labels, _ = select_trainable(queries.approved_samples(session))
        candidate = assess_candidate(svc, session, BACKBONE, samples, labels)
        return champion_out_of_fold(session, "1", candidate)


def test_a_rename_merge_and_retire_map_the_champions_columns(svc: Services) -> None:
    ids, labels, right, before = champion_on_all(svc)
    assert labels == sorted(SCENES)

    yardstick = paired_out_of_fold(svc)
    assert yardstick is not None and len(yardstick[0]) > 100  # the same train+val images, the same labels
    assert yardstick[0].tolist() == yardstick[1].tolist()  # the same data and seed: the same out-of-fold answers
    with svc.session() as session:
        rename_label(session, svc.store, label="sea", to="ocean", admin="boss")
    _, labels, renamed_right, renamed = champion_on_all(svc)
    renamed_pairs = paired_out_of_fold(svc)  # a rename keeps the problem: the run stays the yardstick
    assert renamed_pairs is not None and renamed_pairs[1].tolist() == yardstick[1].tolist()
    assert labels == ["buildings", "forest", "glacier", "mountain", "ocean", "street"]
    assert renamed_right.tolist() == right.tolist()  # the same answers, right or wrong as before
    assert renamed.accuracy == before.accuracy and renamed.per_class["ocean"] == before.per_class["sea"]

    with svc.session() as session:
        merge_label(session, svc.store, label="glacier", into="mountain", admin="boss")
    _, labels, merged_right, merged = champion_on_all(svc)
    assert paired_out_of_fold(svc) is None  # a merge makes another problem: no yardstick
    assert "glacier" not in labels and merged.per_class["mountain"].support == 40
    assert (merged_right | ~right).all()  # nothing it got right turns wrong: glacier ↔ mountain errors vanish
    assert merged.accuracy >= before.accuracy

    with svc.session() as session:
        retire_label(session, svc.store, label="street", admin="boss")
    kept, labels, _, retired = champion_on_all(svc)
    assert labels == ["buildings", "forest", "mountain", "ocean"] and len(kept) == 100  # no column for street
    assert retired.n == 100 and retired.accuracy is not None
