"""Candidate selection is real: next to lite0, a deliberately weak candidate (the same network with random
weights, registered for this test only) loses on cross-validated log loss, and only the winner meets the gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from db import queries
from db.models import Split
from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning import backbones
from model.learning.evaluation import evaluate_probabilities
from model.learning.pipeline import train_candidate
from model.learning.promotion import train
from model.serving.predictor import Predictor
from tests.utils.datasets import dataset_tree
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow
WEAK = "random_lite0"


def _random_lite0(_settings: Settings):  # type: ignore[no-untyped-def]
    import timm
    import torch

    torch.manual_seed(0)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)  # random weights: a weak embedder
    net.reset_classifier(0)
    return net


@pytest.fixture
def weak_backbone() -> Iterator[str]:
    lite0 = backbones.BACKBONES["efficientnet_lite0"]
    backbones.BACKBONES[WEAK] = backbones.BackboneInfo(WEAK, lite0.spec, "lite0 with random weights (test)",
                                                       _random_lite0, lambda _settings: "random-seed-0")
    try:
        yield WEAK
    finally:
        backbones.BACKBONES.pop(WEAK, None)



def test_the_candidate_with_the_best_cross_validated_log_loss_wins(weak_backbone: str, tmp_path: Path) -> None:
    tree = dataset_tree(tmp_path, 40)
    settings = Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                        candidate_backbones=f"{weak_backbone},efficientnet_lite0", gate_min_accuracy=0.5)
    svc = migrated_services(settings)
    with svc.session() as session:
        import_directory(session, svc.store, tree)
    outcome = train(svc, force=True)
    by_name = {c.backbone: c for c in outcome.candidates}
    assert list(by_name) == [weak_backbone, "efficientnet_lite0"]  # both tried, in the configured order
    assert by_name["efficientnet_lite0"].log_loss < by_name[weak_backbone].log_loss, by_name
    assert outcome.backbone == "efficientnet_lite0" and outcome.promoted, outcome.gate
    assert svc.registry.champion() is not None
    assert outcome.gate is not None and outcome.gate.evidence is not None
    assert outcome.gate.evidence.cv_accuracy == pytest.approx(by_name["efficientnet_lite0"].accuracy)


def test_a_champion_of_another_backbone_is_judged_on_its_cached_embeddings_as_its_model_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 1 uses lite0; a lite1 candidate's gate compares with it through lite0's cached embeddings and the
    champion's head, without loading its model to classify the images, and gets what that model gives."""
    settings = Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                        candidate_backbones="efficientnet_lite0", gate_min_accuracy=0.5)
    svc = migrated_services(settings)
    with svc.session() as session:
        import_directory(session, svc.store, dataset_tree(tmp_path, 40))
    assert train(svc, force=True).version == "1"

    def no_model_load(*_args: object, **_kwargs: object) -> Predictor:
        raise AssertionError("the champion's model was loaded to classify the test images")

    with monkeypatch.context() as patch:
        patch.setattr(Predictor, "load", no_model_load)
        outcome = train_candidate(svc, force=True, backbone_name="efficientnet_lite1")
    assert outcome.backbone == "efficientnet_lite1" and outcome.champion_version == "1"
    info, path = svc.registry.model_file()
    champion = Predictor.load(path, version=info.version)
    with svc.session() as session:
        test = [s for s in queries.approved_samples(session) if s.split is Split.TEST]
        proba = champion.predict_many([svc.store.get(s.object_key) for s in test])
    labels = champion.labels
    expected = evaluate_probabilities([s.label or "" for s in test],
                                      np.array([[r.probabilities[label] for label in labels] for r in proba]), labels)
    assert outcome.champion_metrics is not None
    assert outcome.champion_metrics.n == expected.n == len(test)
    assert outcome.champion_metrics.accuracy == pytest.approx(expected.accuracy)
    assert outcome.champion_metrics.log_loss == pytest.approx(expected.log_loss, abs=1e-4)
