"""Training commands: train and gate candidates, promote or roll back the champion, evaluate and export a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from model.cli.invocation import services
from model.cli.output import EXIT_GATE_REFUSED, Bars, command, emit, err
from model.core.errors import SproutError

if TYPE_CHECKING:
    from model.learning.candidates import AssessedCandidate

BackboneOpt = Annotated[str | None, typer.Option(
    help="Train only this backbone's candidate (default: every one in SPROUT_CANDIDATE_BACKBONES).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Train even with few new samples.")]
RunIdArg = Annotated[int | None, typer.Argument(help="Training run id (default: the latest run).")]
ModelOpt = Annotated[str, typer.Option("--model", help="'champion' or a version number.")]


def outcome_line(d: dict[str, Any]) -> None:
    """A training outcome for a person: warnings, then the run, its gate and whether it was promoted."""
    for warning in d.get("warnings") or []:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if d["skipped"]:
        err.print(f"training skipped: {d['reason']}")
        return
    acc = (d.get("metrics") or {}).get("accuracy")
    err.print(f"run {d['run_id']} ({d['backbone']}): test accuracy {acc}, gate "
              f"{'passed' if d['gate'] and d['gate']['passed'] else 'refused'}: {d['gate'] and d['gate']['reason']}")
    if d["promoted"]:
        err.print(f"version {d['version']} promoted")
    elif d["version"] and d["gate"] and d["gate"]["passed"]:
        err.print(f"version {d['version']} is the challenger, judged on live traffic first (`sprout rollout status`)")
    else:
        err.print("not promoted")


def train(force: ForceOpt = False, backbone: BackboneOpt = None) -> None:
    """Train a candidate per backbone, keep the best by cross-validated log loss, gate it against the champion
    and promote it if it passes (exit code 3 when the gate refuses it)."""
    from model.learning import promotion

    with command(), Bars():
        outcome = promotion.train(services(), force=force, backbone_name=backbone)
        emit(outcome.to_dict(), outcome_line)
    if outcome.gate is not None and not outcome.gate.passed:
        raise typer.Exit(EXIT_GATE_REFUSED)


def retrain_check(
    key: Annotated[str | None, typer.Option("--key", help="The trigger (e.g. Airflow run id) asking.")] = None,
) -> None:
    """Count samples approved since the last training run and say whether a retrain is due."""
    from model.learning import promotion

    with command():
        emit(promotion.retrain_check(services(), trigger_key=key).to_dict(), lambda d: err.print(d["reason"]))


def assess_candidate(
    backbone: Annotated[str, typer.Option(help="The backbone whose candidate to cross-validate.")],
) -> None:
    """Embed (cached) and cross-validate one backbone's candidate on the approved samples; records no run."""
    from model.learning.assessment import assess

    with command(), Bars():
        emit(assess(services(), backbone).to_dict(), lambda d: err.print(
            f"{d['backbone']}: cross-validated accuracy {d['accuracy']:.4f}, log loss {d['log_loss']:.4f}"))


def train_candidate(
    force: ForceOpt = False,
    key: Annotated[str | None, typer.Option("--key", help="Idempotency key, e.g. the Airflow run id.")] = None,
    backbone: BackboneOpt = None,
    tried: Annotated[str | None, typer.Option(
        help="JSON list of candidates assessed elsewhere (`assess-candidate` answers), recorded with the run.")] = None,
) -> None:
    """Train and evaluate a candidate and record the gate's decision, without promoting it."""
    from model.learning import pipeline

    with command(), Bars():
        others = _tried(tried)
        emit(pipeline.train_candidate(services(), force=force, backbone_name=backbone, trigger_key=key,
                                      tried=others).to_dict(), outcome_line)


def select_candidate(
    assessed: Annotated[str, typer.Option(
        help="JSON list of the candidates assessed (`assess-candidate` answers), e.g. the DAG's mapped tasks'.")],
) -> None:
    """Pick the candidate to train among those assessed, by the rule `sprout train` applies (the lowest
    cross-validated log loss); prints the winner's backbone and every candidate tried."""
    from model.learning.candidates import select_candidate as pick

    with command():
        choice = pick(_assessed(assessed, "--assessed"))
        emit(choice.to_dict(), lambda d: err.print("\n".join(
            f"candidate {c['backbone']}: cross-validated accuracy {c['accuracy']:.4f}, log loss {c['log_loss']:.4f}"
            + (" (selected)" if c["backbone"] == d["backbone"] else "") for c in d["tried"])))


def _tried(text: str | None) -> list[AssessedCandidate] | None:
    return _assessed(text, "--tried") if text else None


def _assessed(text: str, option: str) -> list[AssessedCandidate]:
    """``assess-candidate`` answers given as JSON to ``option``."""
    from model.learning.candidates import parse_assessed

    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SproutError(f"{option} is not JSON: {exc}") from None
    return parse_assessed(rows, source=option)


def gate(run_id: RunIdArg = None) -> None:
    """The gate's decision for a candidate run (exit code 0 either way; read `gate.passed`)."""
    from model.learning.promotion import gate_decision

    with command():
        emit(gate_decision(services(), run_id).to_dict(), outcome_line)


def promote(run_id: RunIdArg = None) -> None:
    """Register a gate-passed candidate and make it the champion (safe to repeat)."""
    from model.learning.promotion import promote_run

    with command():
        emit(promote_run(services(), run_id).to_dict(), outcome_line)


def rollback(
    version: Annotated[str | None, typer.Argument(help="Version (default: the previous one).")] = None,
) -> None:
    """Move the champion alias back to an earlier version."""
    from model.learning import promotion

    with command():
        emit(promotion.rollback(services(), version).to_dict(), lambda d: err.print(
            f"champion: version {d['previous']} → {d['champion']}"))


def evaluate(
    directory: Annotated[Path, typer.Argument(help="Folder with one sub-folder per label.")],
    model: ModelOpt = "champion",
) -> None:
    """Evaluate a registered model on a folder-per-label tree."""
    from model.learning.evaluation import evaluate_directory
    from model.serving.predictor import Predictor

    with command():
        info, path = services().model_file(model)
        predictor = Predictor.load(path, version=info.version)
        emit(evaluate_directory(predictor, directory), lambda d: err.print(
            f"model v{d['model_version']}: accuracy {d['accuracy']} on {d['n']} images, log loss {d['log_loss']}"))


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the ONNX file.")],
    model: ModelOpt = "champion",
) -> None:
    """Write a registered model's fused ONNX graph to a file."""
    import shutil

    with command():
        info, path = services().model_file(model)
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, output)
        emit({"version": info.version, "output": str(output), "bytes": output.stat().st_size},
             lambda d: err.print(f"wrote version {d['version']} to {d['output']} ({d['bytes']} bytes)"))
