"""Candidate selection is real: next to lite0, a deliberately weak candidate (the same network with random
weights, registered for this test only) loses on cross-validated log loss, and only the winner meets the gate."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.core.settings import Settings
from model.data.importer import import_directory
from model.learning import backbones
from model.learning.promotion import train
from tests.utils.images import dataset_images
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
                                                       _random_lite0)
    try:
        yield WEAK
    finally:
        backbones.BACKBONES.pop(WEAK, None)


def test_the_candidate_with_the_best_cross_validated_log_loss_wins(weak_backbone: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for label in ("dandelion", "grass"):
        (tree / label).mkdir(parents=True)
        for path in dataset_images(label, 40):
            shutil.copyfile(path, tree / label / path.name)
    settings = Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                        candidate_backbones=f"{weak_backbone},efficientnet_lite0", gate_min_accuracy=0.5)
    svc = migrated_services(settings)
    with svc.session() as session:
        import_directory(session, svc.store, tree)
    outcome = train(svc, force=True)
    by_name = {c["backbone"]: c for c in outcome.candidates}
    assert list(by_name) == [weak_backbone, "efficientnet_lite0"]  # both tried, in the configured order
    assert by_name["efficientnet_lite0"]["log_loss"] < by_name[weak_backbone]["log_loss"], by_name
    assert outcome.backbone == "efficientnet_lite0" and outcome.promoted, outcome.gate
    assert svc.registry.champion() is not None
    assert outcome.gate is not None and outcome.gate.evidence is not None
    assert outcome.gate.evidence["cv_accuracy"] == pytest.approx(by_name["efficientnet_lite0"]["accuracy"])
