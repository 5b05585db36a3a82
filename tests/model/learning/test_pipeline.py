"""The core loop end to end on the embedded default: import, train, gate, promote, retrain, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import select

from db.models import ReviewAction, Sample, SampleSource, SampleStatus, Split, TrainingRun, TrainingRunSample
from model.core.errors import ConflictError, NoChampionError, NotEnoughDataError, NotFoundError
from model.core.settings import Settings
from model.data.importer import import_directory
from model.data.samples import Prediction, add_sample
from model.learning.pipeline import new_approved_count, train_candidate
from model.learning.promotion import promote_run, rollback, train
from model.review.actions import review_sample
from tests.utils.datasets import (
    add_mislabeled_copies,
    colour_dataset,
    consistent_with_accuracy,
    split_files,
    write_tree,
)
from tests.utils.paths import require_dataset
from tests.utils.services import migrated_services

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A home with the shared set imported minus 10 held-out images, and version 1 trained."""
    home = tmp_path_factory.mktemp("home")
    initial, held_out = split_files(require_dataset(), held_out=10)
    tree = write_tree(initial, tmp_path_factory.mktemp("initial"))
    svc = migrated_services(Settings(home=home))
    with svc.session() as session:
        summary = import_directory(session, svc.store, tree)
    assert sum(summary.added.values()) == len(initial)
    first = train(svc)
    return {"svc": svc, "held_out": held_out, "first": first}


def test_first_training_promotes_version_1_with_high_accuracy(loop: dict) -> None:
    svc, first = loop["svc"], loop["first"]
    assert first.promoted and first.version == "1"
    assert first.gate and first.gate.passed
    # the test split: images the head never saw
    assert consistent_with_accuracy(first.metrics.accuracy, first.metrics.n), first.metrics
    assert first.n_embedded == 310
    assert svc.registry.champion().version == "1"
    with svc.session() as session:
        run = session.get(TrainingRun, first.run_id)
        lineage = session.scalars(select(TrainingRunSample).where(TrainingRunSample.run_id == run.id)).all()
        assert len(lineage) == 310
        assert {row.split for row in lineage} == {Split.TRAIN, Split.VAL, Split.TEST}
        for row in lineage:
            assert session.get(Sample, row.sample_id).split is row.split
        assert run.gate_passed and run.registered_version == "1" and run.promoted
    client = MlflowClient(svc.registry.tracking_uri)
    mlflow_run = client.get_run(first.mlflow_run_id)
    assert mlflow_run.data.metrics["test_accuracy"] == pytest.approx(first.metrics.accuracy)
    assert mlflow_run.data.params["backbone"] == "efficientnet_lite0"
    artifacts = {a.path for a in client.list_artifacts(first.mlflow_run_id)}
    assert {"confusion_matrix.png", "evaluation.json"} <= artifacts


def test_the_served_graph_gives_the_calibrated_heads_probabilities(loop: dict) -> None:
    """Temperature scaling is folded into the head: the ONNX graph serves calibrated probabilities."""
    import numpy as np

    from model.learning.embeddings import load_cached
    from model.learning.training import softmax
    from model.serving.onnx_graph import read_head
    from model.serving.predictor import Predictor

    svc, first = loop["svc"], loop["first"]
    evidence = first.gate.evidence
    assert evidence.temperature != 1.0 and evidence.ece_after <= evidence.ece_before, evidence
    info, path = svc.registry.model_file()
    _, weight, bias = read_head(path)
    predictor = Predictor.load(path, version=info.version)
    with svc.session() as session:
        test = session.scalars(select(Sample).where(Sample.split == Split.TEST)).all()[:16]
        cached = load_cached(session, "efficientnet_lite0", [s.sha256 for s in test])
        served = predictor.predict_arrays(np.stack([predictor.preprocess(svc.store.get(s.object_key)) for s in test]))
    head = softmax(np.stack([cached[s.sha256] for s in test]) @ weight.T + bias)
    assert np.abs(served - head).max() <= 1e-4
    with svc.session() as session:
        run = session.get(TrainingRun, first.run_id)
        oof = run.out_of_fold  # kept with the run for label-issue detection
        assert len(oof["sample_ids"]) == len(oof["proba"]) == first.counts["train"] + first.counts["val"]
    assert [c.backbone for c in first.candidates] == ["efficientnet_lite0"]


def test_the_model_carries_abstain_thresholds_and_flags_another_label_set_unfamiliar(loop: dict) -> None:
    """The run fits per-label thresholds on its calibrated out-of-fold predictions and the label centroids of its
    train+val embeddings; both travel in the served graph: held-out photos of its labels are seldom unfamiliar,
    photos of another label set (scenes: buildings, glacier) are."""
    import json

    import numpy as np

    from model.learning.abstain import fit_abstain_rule
    from model.learning.embeddings import load_cached
    from model.learning.familiarity import centroids
    from model.learning.run_record import RunParams
    from model.learning.training import softmax
    from model.serving.predictor import Predictor
    from tests.utils.paths import SCENES

    svc, first = loop["svc"], loop["first"]
    info, path = svc.registry.model_file()
    predictor = Predictor.load(path, version=info.version)
    rules = predictor.guards
    assert rules.abstain is not None and rules.unfamiliar is not None
    assert set(rules.abstain.thresholds) == {"dandelion", "grass"} and 0.5 < rules.abstain.coverage <= 1.0
    assert rules.abstain.target == svc.settings.abstain_precision
    with svc.session() as session:
        run = session.get(TrainingRun, first.run_id)
        assert RunParams.from_dict(run.params).guards == rules  # /models reads the coverage from the run
        oof = run.out_of_fold
        samples = {s.id: s for s in session.scalars(select(Sample).where(Sample.id.in_(oof["sample_ids"])))}
        y = np.array([oof["labels"].index(samples[i].label) for i in oof["sample_ids"]])
        cached = load_cached(session, "efficientnet_lite0", [samples[i].sha256 for i in oof["sample_ids"]])
        x = np.stack([cached[samples[i].sha256] for i in oof["sample_ids"]])
    # the thresholds are those of the out-of-fold probabilities, temperature-scaled as served
    proba = softmax(np.log(np.clip(np.array(oof["proba"]), 1e-12, 1)) / first.gate.evidence.temperature)
    refit = fit_abstain_rule(proba, y, oof["labels"], target=rules.abstain.target)
    assert refit.coverage == pytest.approx(rules.abstain.coverage, abs=0.01)
    # the graph's unfamiliarity is the distance to the centroids of the train+val embeddings
    outputs = predictor.run(np.stack([predictor.preprocess(p.read_bytes()) for _, p in loop["held_out"]]))
    reference = centroids(x, y)
    unit = outputs.features / np.linalg.norm(outputs.features, axis=1, keepdims=True)
    assert outputs.unfamiliarity == pytest.approx(1 - (unit @ reference.T).max(axis=1), abs=1e-4)
    held_out = [predictor.predict_bytes(p.read_bytes()) for _, p in loop["held_out"]]
    assert sum(r.unfamiliar for r in held_out) <= 2, [r.to_dict() for r in held_out]
    foreign = sorted((SCENES / "buildings").glob("*.jpg"))[:5] + sorted((SCENES / "glacier").glob("*.jpg"))[:5]
    flagged = [predictor.predict_bytes(p.read_bytes()).unfamiliar for p in foreign]
    assert sum(flagged) >= 9, flagged
    assert json.loads(predictor.metadata["sprout.unfamiliar"])["reference_size"] == 2


def test_nine_new_approvals_skip_training_and_ten_embed_exactly_ten(loop: dict) -> None:
    svc, held_out = loop["svc"], loop["held_out"]
    predictor = svc.registry.load_predictor()
    ids = []
    with svc.session() as session:
        for _label, path in held_out:
            data = path.read_bytes()
            guess = predictor.predict_bytes(data)
            sample, created = add_sample(session, svc.store, data=data, source=SampleSource.UPLOAD,
                                         prediction=Prediction(guess.label, guess.confidence, guess.model_version))
            assert created and sample.status is SampleStatus.PENDING
            ids.append(sample.id)
        for (label, _path), sample_id in zip(held_out[:9], ids[:9], strict=True):
            review_sample(session, svc.store, sample_id=sample_id, action=ReviewAction.APPROVE, label=label,
                          reviewer="alice")
        assert new_approved_count(session) == 9
    skipped = train(svc)
    assert skipped.skipped and "9" in skipped.reason and skipped.version is None
    with svc.session() as session:
        review_sample(session, svc.store, sample_id=ids[9], action=ReviewAction.APPROVE, label=held_out[9][0],
                      reviewer="alice")
    second = train(svc)
    assert not second.skipped
    assert second.n_embedded == 10
    assert second.counts["train"] + second.counts["val"] + second.counts["test"] == 320
    if second.gate.passed:
        assert second.promoted and svc.registry.champion().version == second.version == "2"
    else:
        assert "champion" in second.gate.reason and svc.registry.champion().version == "1"


def test_forced_retrain_on_same_data_is_reproducible_and_ties_pass(loop: dict) -> None:
    svc = loop["svc"]
    before = svc.registry.champion().version
    a = train(svc, force=True)
    assert a.n_embedded == 0  # everything cached
    assert a.gate.passed and a.promoted and int(a.version) > int(before)
    b = train_candidate(svc, force=True)
    assert b.metrics == a.metrics  # same data, same seed → same model
    promoted = promote_run(svc, b.run_id)
    again = promote_run(svc, b.run_id)  # idempotent: no second registration
    assert again.version == promoted.version
    assert len({v.version for v in svc.registry.versions()}) == int(promoted.version)


def test_worse_candidate_is_not_promoted_and_champion_is_unchanged(loop: dict) -> None:
    svc = loop["svc"]
    svc.settings.gate_min_accuracy = None  # the default: no absolute floor; the champion comparison refuses
    champion = svc.registry.champion().version
    versions = len(svc.registry.versions())
    add_mislabeled_copies(svc)  # more mislabeled copies than true images, all in the train split
    worse = train(svc)
    assert not worse.gate.passed, worse.gate
    assert "champion" in worse.gate.reason
    assert worse.metrics.accuracy < worse.champion_metrics.accuracy
    assert not worse.promoted and worse.version is None
    assert svc.registry.champion().version == champion
    assert len(svc.registry.versions()) == versions  # a refused candidate is registered nowhere
    with svc.session() as session:
        run = session.get(TrainingRun, worse.run_id)
        assert run.gate_passed is False and "champion" in run.gate_reason and run.registered_version is None
    with pytest.raises(ConflictError):
        promote_run(svc, worse.run_id)


def test_rollback_moves_champion_back(loop: dict) -> None:
    svc = loop["svc"]
    current = int(svc.registry.champion().version)
    result = rollback(svc)
    assert result.to_dict() == {"previous": str(current), "champion": str(current - 1)}
    assert svc.registry.champion().version == str(current - 1)
    rollback(svc, str(current))
    assert svc.registry.champion().version == str(current)
    with pytest.raises(NotFoundError):
        rollback(svc, "999")


def test_no_champion_and_too_little_data_are_clear_errors(tmp_path: Path) -> None:
    svc = migrated_services(Settings(home=tmp_path))
    with pytest.raises(NoChampionError):
        svc.registry.load_predictor()
    with pytest.raises(NotFoundError):
        rollback(svc)
    assert train(svc).skipped
    with pytest.raises(NotEnoughDataError):
        train(svc, force=True)


def test_other_labels_work(tmp_path: Path) -> None:
    tree = colour_dataset(tmp_path / "colours")
    svc = migrated_services(Settings(home=tmp_path / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, tree)
    outcome = train(svc)
    assert outcome.labels == ["crimson", "forest", "navy"]
    assert outcome.promoted and outcome.metrics.accuracy >= 0.9
    predictor = svc.registry.load_predictor()
    assert predictor.labels == ["crimson", "forest", "navy"]
    result = predictor.predict_bytes((tree / "navy" / "000.png").read_bytes())
    assert result.label == "navy" and set(result.probabilities) == {"crimson", "forest", "navy"}


def test_dag_steps_are_idempotent_per_trigger_key(loop: dict) -> None:
    """The DAG's separate steps: check → candidate (keyed) → gate → promote; retries change nothing."""
    from model.learning.promotion import gate_decision, retrain_check

    svc = loop["svc"]
    svc.settings.gate_min_accuracy = None
    assert retrain_check(svc).due is False
    first = train_candidate(svc, force=True, trigger_key="scheduled__2026-11-23")
    resumed = retrain_check(svc, trigger_key="scheduled__2026-11-23")  # a cleared DAG run goes on to promote
    assert resumed.due is True and str(first.run_id) in resumed.reason
    again = train_candidate(svc, force=True, trigger_key="scheduled__2026-11-23")
    assert again.run_id == first.run_id  # a retried task does not train twice
    assert gate_decision(svc, first.run_id).gate == first.gate
    if first.gate.passed:
        assert promote_run(svc, first.run_id).version == promote_run(svc, first.run_id).version


def test_promotion_refuses_a_candidate_gated_against_an_older_champion(tmp_path: Path) -> None:
    svc = migrated_services(Settings(home=tmp_path / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, colour_dataset(tmp_path / "colours"))
    early = train_candidate(svc, force=True)  # gated when there was no champion yet
    assert early.gate.passed and early.champion_version is None
    assert train(svc, force=True).version == "1"  # e.g. a concurrent bootstrap promotes first
    stale = train_candidate(svc, force=True)  # gated against version 1
    assert stale.gate.passed and stale.champion_version == "1"
    with pytest.raises(ConflictError, match="gated against no champion, but the champion is now version 1"):
        promote_run(svc, early.run_id)
    assert train(svc, force=True).version == "2"
    with pytest.raises(ConflictError, match="gated against version 1, but the champion is now version 2"):
        promote_run(svc, stale.run_id)
    assert svc.registry.champion().version == "2" and len(svc.registry.versions()) == 2
    rollback(svc, "1")  # a rollback during training: the candidate gated against 2 must not replace 1
    late = train_candidate(svc, force=True)
    rollback(svc, "2")
    with pytest.raises(ConflictError, match="gated against version 1"):
        promote_run(svc, late.run_id)
    assert svc.registry.champion().version == "2"


def test_a_label_without_training_samples_is_left_out_with_a_warning_not_a_failure(tmp_path: Path) -> None:
    """One approval under a new label that landed in the test split used to fail every run, for good."""
    import io

    from PIL import Image

    from db.models import ReviewAction
    from model.review.actions import relabel_sample

    svc = migrated_services(Settings(home=tmp_path / "home"))
    with svc.session() as session:
        import_directory(session, svc.store, colour_dataset(tmp_path / "colours"))
        for shade in range(200):  # a new label whose only sample is in the test split
            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (240, 200 + shade % 50, shade)).save(buf, format="PNG")
            lone, _ = add_sample(session, svc.store, data=buf.getvalue(), source=SampleSource.IMPORT, label="amber")
            if lone.split is Split.TEST:
                break
            session.delete(lone)
            session.commit()
        assert lone.split is Split.TEST
    outcome = train(svc, force=True)
    assert outcome.promoted and outcome.labels == ["crimson", "forest", "navy"]
    assert outcome.warnings == [
        "Label 'amber' was left out: it needs 2 more training samples (train or val split) to be trained "
        "(1 approved so far: 1 test)."]
    with svc.session() as session:
        run = session.get(TrainingRun, outcome.run_id)
        assert run.params["warnings"] == outcome.warnings
        assert lone.id not in {row.sample_id for row in run.samples}
    with svc.session() as session:  # an admin corrects it: audited, the object moved
        fixed = relabel_sample(session, svc.store, sample_id=lone.id, label="crimson", reviewer="boss")
        assert fixed.label == "crimson" and fixed.object_key.startswith("labeled/crimson/")
        assert fixed.reviews[-1].action is ReviewAction.RELABEL and fixed.reviews[-1].old_label == "amber"
        back = relabel_sample(session, svc.store, sample_id=lone.id, label=None, reviewer="boss")
        assert back.status is SampleStatus.PENDING and back.label is None and back.object_key.startswith("pending/")
        assert back.reviews[-1].action is ReviewAction.UNAPPROVE
    assert set(svc.store.list()) >= {back.object_key}
    assert not any(k.startswith("labeled/") and lone.sha256 in k for k in svc.store.list())


def test_an_under_represented_label_trains_with_a_warning_in_the_run_and_mlflow(tmp_path: Path) -> None:
    """Class imbalance is reported, not refused: the run's warnings (stored and logged to MLflow) name the label."""
    import json

    colours = colour_dataset(tmp_path / "colours")
    for path in sorted((colours / "navy").iterdir())[6:]:  # 6 navy against 24 of the others: below half the mean
        path.unlink()
    svc = migrated_services(Settings(home=tmp_path / "home", candidate_backbones="efficientnet_lite0"))
    with svc.session() as session:
        import_directory(session, svc.store, colours)
    outcome = train(svc, force=True)
    assert outcome.labels == ["crimson", "forest", "navy"]
    [warning] = outcome.warnings
    assert warning.startswith("Label 'navy' is under-represented: 6 approved samples (") and "of 54" in warning
    with svc.session() as session:
        assert session.get(TrainingRun, outcome.run_id).params["warnings"] == outcome.warnings
    client = MlflowClient(svc.registry.tracking_uri)
    balance = json.loads(open(client.download_artifacts(outcome.mlflow_run_id, "class_balance.json",
                                                        str(tmp_path))).read())
    assert [(c["label"], c["count"], c["under_represented"]) for c in balance["classes"]] == [
        ("crimson", 24, False), ("forest", 24, False), ("navy", 6, True)]
    logged = json.loads(open(client.download_artifacts(outcome.mlflow_run_id, "warnings.json", str(tmp_path))).read())
    assert logged == {"warnings": outcome.warnings}
