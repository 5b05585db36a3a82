"""The selected candidate's final head, its test metrics beside the champion's on the same samples, and the
gate's decision on that evidence."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from db import queries
from db.models import Sample, Split
from model.data.label_changes import changes_after_run, columns_through, label_map
from model.learning.assessment import Candidate
from model.learning.embeddings import load_cached
from model.learning.evaluation import (
    Calibration,
    CrossValidation,
    build_evidence,
    calibrate,
    calibrated,
    correct,
    evaluate_probabilities,
)
from model.learning.evidence import Metrics
from model.learning.gate import Decision, GateRule, gate
from model.learning.training_data import development_set
from model.runtime.services import Services
from model.serving.contract import META_BACKBONE, META_LABELS, META_TRAINING_RUN

if TYPE_CHECKING:
    from model.learning.training import Head

log = logging.getLogger(__name__)

ChampionResult = tuple[str | None, Metrics | None, np.ndarray | None]
"""The champion's ``(version, metrics, per-sample correctness)`` on a candidate's test samples (all None without
a champion)."""
PairedOutOfFold = tuple[np.ndarray, np.ndarray]
"""Out-of-fold correctness on the same train+val samples: ``(candidate's, champion run's)``."""


@dataclass(frozen=True)
class Evaluation:
    """A candidate's test metrics, the champion's on the same samples, and the gate's decision (with evidence)."""

    metrics: Metrics
    champion_version: str | None
    champion_metrics: Metrics | None
    decision: Decision


def fit_head(candidate: Candidate) -> tuple[Head, Calibration]:
    """The final head of a candidate (see ``final_head``)."""
    x, y = development_set(candidate.data)
    return final_head(candidate.cv, x, y, n_classes=len(candidate.data.labels))


def final_head(cv: CrossValidation, x: np.ndarray, y: np.ndarray, *, n_classes: int) -> tuple[Head, Calibration]:
    """The head on all train+val samples with the decay cross-validation chose (its fit starts from the fold
    heads': ``CrossValidation.start_head``), temperature-scaled on the out-of-fold logits (the temperature is
    folded into the weights, so the ONNX graph serves it for free)."""
    from model.learning.training import fit_head_with_decay

    head = fit_head_with_decay(x, y, n_classes=n_classes, weight_decay=cv.weight_decay, start=cv.start_head())
    calibration = calibrate(cv)
    return calibrated(head, calibration.temperature), calibration


def evaluate_champion(svc: Services, session: Session, test: list[Sample], *, backbone_name: str,
                      x_test: np.ndarray) -> ChampionResult:
    """The current champion's metrics and per-sample correctness on exactly these test samples (None without a
    champion).

    The champion's head (read from its ONNX graph) is applied to cached embeddings of its backbone: the
    candidate's when it is the same backbone, else the cache of the champion's own (every run embeds all samples
    with every candidate backbone). Only when some test image has none does the champion's ONNX model classify
    the images themselves. Its columns are mapped through the label changes made since its run (renamed, merged:
    summed, retired: dropped), so it is judged on today's labels like the candidate.
    """
    from model.learning.training import Head
    from model.serving.onnx_graph import read_head
    from model.serving.predictor import Predictor

    if svc.registry.champion() is None or not test:
        return None, None, None
    info, path = svc.model_file()  # a champion Sprout did not train is no baseline: ArtifactRejectedError
    meta, weight, bias = read_head(path)
    labels = json.loads(meta[META_LABELS])
    champion_backbone = meta.get(META_BACKBONE)
    features: np.ndarray | None = x_test if champion_backbone == backbone_name else None
    if features is None and champion_backbone:
        cached = load_cached(session, champion_backbone, [s.sha256 for s in test])
        if len(cached) == len({s.sha256 for s in test}):
            features = np.stack([cached[s.sha256] for s in test])
    if features is not None and weight.shape[1] == features.shape[1]:
        proba = Head(weight=weight, bias=bias, weight_decay=0.0, val_log_loss=None).predict_proba(features)
    else:
        predictor = Predictor.load(path, version=info.version)
        proba = np.concatenate([predictor.predict_arrays(predictor.preprocess(svc.store.get(s.object_key))[None])
                                for s in test])
    # An admin's renames, merges and retirements since the champion's run: its columns take today's labels.
    proba, labels = columns_through(proba, labels, changes_after_run(session, meta.get(META_TRAINING_RUN)))
    y_test = [s.label or "" for s in test]
    return info.version, evaluate_probabilities(y_test, proba, labels), correct(y_test, proba, labels)


def evaluate_candidate(svc: Services, session: Session, candidate: Candidate, head: Head,
                       calibration: Calibration) -> Evaluation:
    """Test metrics of the candidate and of the champion on the same samples, the evidence, the gate's decision."""
    data = candidate.data
    test = data.test_samples
    x_test, _ = data.split(Split.TEST)
    champion = evaluate_champion(svc, session, test, backbone_name=candidate.name, x_test=x_test)
    evaluation = judge(candidate.cv, calibration, head, x_test, [s.label or "" for s in test], data.labels,
                       champion, GateRule.from_settings(svc.settings),
                       champion_cv=champion_out_of_fold(session, champion[0], candidate))
    log.info("gate %s: %s", "passed" if evaluation.decision.passed else "refused", evaluation.decision.reason)
    return evaluation


def champion_out_of_fold(session: Session, version: str | None, candidate: Candidate) -> PairedOutOfFold | None:
    """The candidate's and the champion run's out-of-fold correctness on the train+val samples both runs
    cross-validated, each against the label it was given then (today's names: renames since are followed). None
    without such a run or overlap, or when labels were merged, retired or added since: another problem.

    Paired on the same images, new (maybe harder) samples weigh on neither side; what moves it is a label that
    changed (flipped, or corrected) or a model that got worse at the same images."""
    from model.learning.label_evidence import LabelEvidence

    run = queries.get_run_by_version(session, version=version) if version is not None else None
    evidence = LabelEvidence.from_dict(run.out_of_fold) if run is not None else None
    if run is None or evidence is None:
        return None
    today = label_map(sorted({*(run.labels or []), *evidence.labels}), changes_after_run(session, run.id))
    current = [today[label] for label in run.labels or []]
    if None in current or sorted(label or "" for label in current) != sorted(candidate.data.labels):
        return None
    given = {row.sample_id: today.get(row.label) for row, _ in queries.run_lineage(session, run_id=run.id)}
    champion_right = {sid: today.get(evidence.labels[int(evidence.proba[i].argmax())]) == given.get(sid)
                      for i, sid in enumerate(evidence.sample_ids)
                      if evidence.source(i) == "out_of_fold" and given.get(sid) is not None}
    data, cv = candidate.data, candidate.cv
    development = [s.id for s in data.development_samples]
    right = cv.logits.argmax(axis=1) == cv.y
    both = [(bool(right[row]), champion_right[sid]) for row, sid in enumerate(development) if sid in champion_right]
    if not both:
        return None
    pairs = np.array(both, dtype=bool)
    return pairs[:, 0], pairs[:, 1]


def judge(cv: CrossValidation, calibration: Calibration, head: Head, x_test: np.ndarray, y_test: list[str],
          labels: list[str], champion: ChampionResult, rule: GateRule, *,
          champion_cv: PairedOutOfFold | None = None) -> Evaluation:
    """The gate on a candidate's evidence: its cross-validation, its test predictions, the champion's
    ``(version, metrics, per-sample correctness)`` on the same test samples, and the candidate's and the champion
    run's out-of-fold correctness on the train+val samples both cross-validated (``champion_out_of_fold``)."""
    proba = head.predict_proba(x_test)
    metrics = evaluate_probabilities(y_test, proba, labels)
    champion_version, champion_metrics, champion_correct = champion
    evidence = build_evidence(cv=cv, calibration=calibration, y_test=y_test, candidate_metrics=metrics,
                              candidate_correct=correct(y_test, proba, labels), champion_version=champion_version,
                              champion_metrics=champion_metrics, champion_correct=champion_correct, rule=rule,
                              champion_cv=champion_cv)
    return Evaluation(metrics, champion_version, champion_metrics, gate(evidence, rule))
