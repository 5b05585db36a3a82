"""Retrains that scale (issue 26, point 3): the weight-decay search on a stratified subsample with each fold's head
fitted on all of its part, the final head started from the fold heads, folds fitted side by side, embeddings read
as one matrix, a dominated backbone skipped only under the documented rule (and recorded), and the drift
reference drawn by label before any vector is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from db.models import Embedding, RunStatus, TrainingRun
from model.core.settings import Settings
from model.learning import evaluation
from model.learning.candidates import AssessedCandidate, dominant_backbone
from model.learning.embeddings import load_cached, load_matrix
from model.learning.evaluation import cross_validate, stratified_subsample
from model.learning.run_record import RunParams
from model.learning.training import fit_head_with_decay
from model.monitoring.drift import reference_sample
from tests.utils.services import migrated_services

LABELS = 5


def blobs(n: int, *, seed: int, labels: int = LABELS, dim: int = 12,
          weights: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy points around one centre per label (label shares ``weights``, else even)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(labels, size=n, p=weights)
    centres = rng.normal(scale=1.5, size=(labels, dim))
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y.astype(np.int64)


# --- the stratified subsample ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_subsample_keeps_every_labels_share_and_its_rare_labels(seed: int) -> None:
    _, y = blobs(5000, seed=seed, weights=(0.55, 0.25, 0.15, 0.0496, 0.0004))
    picked = stratified_subsample(y, 500, seed=seed)
    assert len(set(picked.tolist())) == len(picked) and np.all(np.diff(picked) > 0)  # distinct, sorted
    assert abs(len(picked) - 500) <= LABELS
    full, sub = np.bincount(y, minlength=LABELS), np.bincount(y[picked], minlength=LABELS)
    for label in range(LABELS):
        if full[label]:
            # its share, rounded; a label too rare for a share keeps two samples (or all it has)
            assert sub[label] >= min(2, full[label])
            assert abs(sub[label] - full[label] * 500 / len(y)) <= 2
    np.testing.assert_array_equal(picked, stratified_subsample(y, 500, seed=seed))  # seeded
    assert not np.array_equal(picked, stratified_subsample(y, 500, seed=seed + 10))


def test_a_subsample_as_large_as_the_set_is_the_set() -> None:
    _, y = blobs(40, seed=0)
    np.testing.assert_array_equal(stratified_subsample(y, 40, seed=0), np.arange(40))


# --- cross-validation with the search on a subsample -----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_decay_search_uses_a_stratified_subsample_and_each_fold_fits_on_all_its_part(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = blobs(2000, seed=seed, weights=(0.4, 0.3, 0.15, 0.1, 0.05))
    searched: list[np.ndarray] = []
    fitted: list[int] = []
    real_search, real_fit = evaluation.train_head, evaluation.fit_head_with_decay  # type: ignore[attr-defined]

    def search(x_fit, y_fit, x_val, y_val, **kw):  # type: ignore[no-untyped-def]
        searched.append(np.concatenate([y_fit, y_val]))
        return real_search(x_fit, y_fit, x_val, y_val, **kw)

    def fit(x_all, y_all, **kw):  # type: ignore[no-untyped-def]
        fitted.append(len(y_all))
        return real_fit(x_all, y_all, **kw)

    monkeypatch.setattr(evaluation, "train_head", search)
    monkeypatch.setattr(evaluation, "fit_head_with_decay", fit)
    cv = cross_validate(x, y, n_classes=LABELS, seed=seed, search_samples=300, workers=2)
    assert cv.searched == 300 and len(searched) == len(fitted) == cv.folds == 5
    assert sorted(fitted) == sorted(int((cv.fold_of != fold).sum()) for fold in range(5))  # each on all of its part
    for labels_searched in searched:
        assert abs(len(labels_searched) - 300) <= LABELS
        shares = np.bincount(labels_searched, minlength=LABELS) / len(labels_searched)
        np.testing.assert_allclose(shares, np.bincount(y, minlength=LABELS) / len(y), atol=0.02)
    assert all(h.weight_decay == wd for h, wd in zip(cv.heads, cv.weight_decays, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_subsample_search_leaves_the_evidence_of_a_full_search(seed: int) -> None:
    """Out-of-fold accuracy and log loss with the decay chosen on 400 samples per fold, as with all 1600."""
    x, y = blobs(2000, seed=seed)
    full = cross_validate(x, y, n_classes=LABELS, seed=seed)
    sub = cross_validate(x, y, n_classes=LABELS, seed=seed, search_samples=400)
    assert full.searched is None and sub.searched == 400
    np.testing.assert_array_equal(full.fold_of, sub.fold_of)
    assert abs(full.accuracy - sub.accuracy) <= 0.01
    assert abs(evaluation.cv_log_loss(full) - evaluation.cv_log_loss(sub)) <= 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folds_fitted_side_by_side_give_the_same_cross_validation(seed: int) -> None:
    x, y = blobs(600, seed=seed)
    one = cross_validate(x, y, n_classes=LABELS, seed=seed, workers=1)
    two = cross_validate(x, y, n_classes=LABELS, seed=seed, workers=2)
    np.testing.assert_array_equal(one.logits, two.logits)
    np.testing.assert_array_equal(one.fold_of, two.fold_of)
    assert one.weight_decays == two.weight_decays


@pytest.mark.parametrize("seed", [0, 1])
def test_the_final_head_starts_from_the_fold_heads_and_lands_where_a_cold_fit_does(seed: int) -> None:
    x, y = blobs(1500, seed=seed)
    cv = cross_validate(x, y, n_classes=LABELS, seed=seed)
    start = cv.start_head()
    assert start is not None and start.weight_decay == cv.weight_decay
    chosen = [h for h in cv.heads if h.weight_decay == cv.weight_decay]
    np.testing.assert_allclose(start.weight, np.mean([h.weight for h in chosen], axis=0), rtol=1e-6)
    warm = fit_head_with_decay(x, y, n_classes=LABELS, weight_decay=cv.weight_decay, start=start)
    cold = fit_head_with_decay(x, y, n_classes=LABELS, weight_decay=cv.weight_decay)
    np.testing.assert_allclose(warm.predict_proba(x), cold.predict_proba(x), atol=2e-3)


# --- a dominated backbone --------------------------------------------------------------------------------------

NAMES = ["lite0", "lite1", "lite2"]


def tried(losses: dict[str, float]) -> list[AssessedCandidate]:
    return [AssessedCandidate(backbone=name, accuracy=0.9, log_loss=loss) for name, loss in losses.items()]


FULL = tried({"lite0": 0.30, "lite1": 0.40, "lite2": 0.45})
ALONE = tried({"lite0": 0.30})


def test_a_backbone_that_won_the_last_runs_clearly_is_assessed_alone() -> None:
    found = dominant_backbone([FULL, FULL, FULL], NAMES, runs=3, margin=0.05)
    assert found is not None and found.backbone == "lite0" and found.skipped == ("lite1", "lite2")
    assert "last 3 runs" in found.reason


@pytest.mark.parametrize("history", [
    [FULL, FULL],  # fewer runs that assessed all than required
    [FULL, FULL, tried({"lite0": 0.30, "lite1": 0.33, "lite2": 0.45})],  # one win by less than the margin
    [FULL, FULL, tried({"lite0": 0.50, "lite1": 0.40, "lite2": 0.45})],  # another winner once
    [FULL, FULL, tried({"lite0": 0.30, "lite1": 0.40})],  # one did not assess all: not evidence
    [ALONE, ALONE, ALONE, FULL, FULL, FULL],  # it skipped 3 runs in a row: this one assesses all again
])
def test_no_backbone_is_skipped_outside_the_rule(history: list[list[AssessedCandidate]]) -> None:
    assert dominant_backbone(history, NAMES, runs=3, margin=0.05) is None


def test_skipping_runs_do_not_count_but_do_not_break_the_streak_of_evidence() -> None:
    assert dominant_backbone([ALONE, ALONE, FULL, FULL, FULL], NAMES, runs=3, margin=0.05) is not None
    assert dominant_backbone([FULL, FULL, FULL], NAMES, runs=0, margin=0.05) is None  # 0: off
    assert dominant_backbone([FULL, FULL, FULL], ["lite0"], runs=3, margin=0.05) is None  # one candidate anyway


@pytest.mark.slow
def test_a_run_skips_a_dominated_backbone_and_records_why(tmp_path: Path) -> None:
    """Three earlier runs that assessed both backbones, lite0 well ahead each time: the next run assesses only
    lite0 (the other is never loaded nor embedded), and the run, its JSON and MLflow say what was skipped and why.
    """
    from mlflow.tracking import MlflowClient

    from model.data.importer import import_directory
    from model.learning.pipeline import train_candidate
    from tests.utils.datasets import colour_dataset

    settings = Settings(_env_file=None, home=tmp_path / "home",  # type: ignore[call-arg]
                        candidate_backbones="efficientnet_lite0,no_such_backbone", candidate_dominance_runs=3)
    svc = migrated_services(settings)
    with svc.session() as session:
        import_directory(session, svc.store, colour_dataset(tmp_path / "colours", per_label=12))
        for _ in range(3):
            session.add(TrainingRun(backbone="efficientnet_lite0", labels=[], status=RunStatus.SUCCEEDED,
                                    params=RunParams(candidates=tuple(tried({"efficientnet_lite0": 0.2,
                                                                             "no_such_backbone": 0.6}))).to_dict()))
        session.commit()
    outcome = train_candidate(svc, force=True)  # an unknown backbone would fail the run were it assessed
    assert [c.backbone for c in outcome.candidates] == ["efficientnet_lite0"]
    assert list(outcome.skipped_candidates) == ["no_such_backbone"]
    assert "won each of the last 3 runs" in outcome.skipped_candidates["no_such_backbone"]
    with svc.session() as session:
        run = session.get(TrainingRun, outcome.run_id)
        assert run is not None and RunParams.from_dict(run.params).skipped == outcome.skipped_candidates
        assert not session.query(Embedding).filter(Embedding.backbone == "no_such_backbone").count()
    params = MlflowClient(svc.registry.tracking_uri).get_run(str(outcome.mlflow_run_id)).data.params
    assert params["skipped_candidates"] == "no_such_backbone"
    svc.close()


# --- the embeddings as one matrix; the drift reference ---------------------------------------------------------


@pytest.mark.parametrize("n", [30, 6000])  # IN lists below queries.EMBEDDING_SCAN_FROM, one scan from it on
def test_the_embeddings_load_as_one_matrix_in_the_order_asked(n: int, tmp_path: Path) -> None:
    svc = migrated_services(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    rng = np.random.default_rng(n)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    hashes = [f"{i:064x}" for i in range(n)]
    with svc.session() as session:
        session.execute(insert(Embedding), [
            {"sha256": sha, "backbone": "b", "dim": 8, "vector": v.tobytes()} for sha, v in zip(hashes, vectors,
                                                                                              strict=True)])
        session.execute(insert(Embedding), [
            {"sha256": hashes[0], "backbone": "other", "dim": 8, "vector": np.ones(8, np.float32).tobytes()}])
        session.commit()
        asked = [hashes[-1], "f" * 64, *hashes[: n - 1], hashes[0]]  # reversed ends, one missing, a repeat
        matrix, found = load_matrix(session, "b", asked)
        assert matrix.dtype == np.float32 and matrix.shape == (n + 2, 8)
        assert found.tolist() == [True, False, *[True] * n]
        np.testing.assert_array_equal(matrix[0], vectors[-1])
        np.testing.assert_array_equal(matrix[1], np.zeros(8))
        np.testing.assert_array_equal(matrix[2 : n + 1], vectors[: n - 1])
        np.testing.assert_array_equal(matrix[-1], vectors[0])
        cached = load_cached(session, "b", hashes)
        np.testing.assert_array_equal(np.stack([cached[h] for h in hashes]), vectors)
        empty, none_found = load_matrix(session, "b", ["e" * 64], dim=8)
        assert empty.shape == (1, 8) and not none_found.any()
    svc.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_drift_reference_is_drawn_by_label_before_any_vector_is_read(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.choice(["a", "b", "c", "d"], size=20_000, p=[0.7, 0.2, 0.09, 0.01])
    rows = [(f"{i:064x}", str(label)) for i, label in enumerate(labels)]
    picked = reference_sample(rows, 1000, seed=seed)
    assert abs(len(picked) - 1000) <= 4 and len(set(picked)) == len(picked)
    chosen = set(picked)
    for label, share in (("a", 0.7), ("b", 0.2), ("c", 0.09), ("d", 0.01)):
        kept = sum(1 for sha, lab in rows if lab == label and sha in chosen)
        assert abs(kept - share * 1000) <= 0.02 * 1000, label
    assert reference_sample(rows[:10], 1000, seed=seed) == [sha for sha, _ in rows[:10]]
