"""The `sprout` CLI as a user runs it: separate processes, `--json` prints exactly one JSON object."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from db.models import Sample, Split, User
from tests.utils.datasets import consistent_with_accuracy
from tests.utils.paths import require_dataset, shared_graphs
from tests.utils.services import TEST_SPLIT_KEY

pytestmark = pytest.mark.slow
SPROUT = str(Path(sys.executable).with_name("sprout"))


def sprout(home: Path, *args: str, stdin: str | None = None, ok: bool = True, json_last: bool = False,
           code: int | None = None, **settings: str) -> dict:
    """Run `sprout --json ARGS` (``json_last``: `sprout ARGS --json`) with an embedded home; return its single
    JSON object. ``code``: the exit code expected (else 0 when ``ok``); ``settings``: more SPROUT_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | shared_graphs() | {
        "SPROUT_HOME": str(home), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}
    env |= {f"SPROUT_{key.upper()}": value for key, value in settings.items()}
    argv = [*args, "--json"] if json_last else ["--json", *args]
    proc = subprocess.run([SPROUT, *argv], input=stdin, capture_output=True, text=True, env=env,
                          timeout=600, cwd=home.parent)
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert (proc.returncode == 0) is ok, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON object, got: {proc.stdout[:2000]}"
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli") / "state"


def test_commands_refuse_a_database_that_was_never_migrated(home: Path) -> None:
    refused = sprout(home, "status", ok=False)
    assert refused["type"] == "SchemaOutOfDateError" and "sprout db upgrade" in refused["error"]
    upgraded = sprout(home, "db", "upgrade")
    assert upgraded["upgraded"] is True and upgraded["revision"]


def test_import_then_train_promotes_version_1(home: Path) -> None:
    imported = sprout(home, "import", str(require_dataset()))
    assert imported["added"] == 320 and imported["added_by_label"] == {"dandelion": 160, "grass": 160}
    assert sprout(home, "import", str(require_dataset()))["skipped_duplicates"] == 320
    trained = sprout(home, "train", json_last=True)  # every EfficientNet-Lite candidate, the default
    assert trained["version"] == "1" and trained["promoted"] and trained["gate"]["passed"]
    candidates = trained["candidates"]
    assert [c["backbone"] for c in candidates] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    assert trained["backbone"] == min(candidates, key=lambda c: c["log_loss"])["backbone"]
    assert all(0.8 < c["accuracy"] <= 1 and c["log_loss"] > 0 for c in candidates), candidates
    evidence = trained["gate"]["evidence"]
    assert {"cv_accuracy", "cv_accuracy_ci", "test_accuracy", "test_accuracy_ci", "n_test", "champion_version",
            "paired", "mcnemar_p", "ece_before", "ece_after"} <= set(evidence)
    assert evidence["cv_accuracy_ci"][0] < evidence["cv_accuracy"] < evidence["cv_accuracy_ci"][1]
    assert evidence["champion_version"] is None and evidence["paired"] is None and evidence["mcnemar_p"] is None
    assert evidence["ece_after"] <= evidence["ece_before"], evidence  # calibrated on the out-of-fold logits
    assert evidence["n_test"] == trained["metrics"]["n"]
    assert consistent_with_accuracy(trained["metrics"]["accuracy"], trained["metrics"]["n"]), trained["metrics"]
    status = sprout(home, "status")
    assert status["samples"]["approved"] == 320 and status["approved_since_last_run"] == 0
    assert status["champion"]["version"] == "1"
    assert status["champion"]["metrics"]["accuracy"] == trained["metrics"]["accuracy"]
    skipped = sprout(home, "train")
    assert skipped["skipped"] and "0 new" in skipped["reason"]


def test_evaluate_on_images_the_model_never_saw(home: Path, tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{home / 'sprout.db'}")
    with engine.connect() as conn:
        test_rows = conn.execute(select(Sample.label, Sample.object_key).where(Sample.split == Split.TEST)).all()
    for label, key in test_rows:  # the test split: never used to fit the head or choose its weight decay
        (tmp_path / "unseen" / label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "objects" / key, tmp_path / "unseen" / label / Path(key).name)
    result = sprout(home, "evaluate", str(tmp_path / "unseen"))
    assert result["n"] == len(test_rows) and result["model_version"] == "1"
    assert consistent_with_accuracy(result["accuracy"], result["n"]), result
    assert set(result["per_class"]) == {"dandelion", "grass"}
    assert {"precision", "recall", "f1", "support"} <= set(result["per_class"]["grass"])
    again = sprout(home, "evaluate", str(tmp_path / "unseen"), "--model", "1")
    assert again["accuracy"] == result["accuracy"]


def test_evaluate_any_label_tree(home: Path, tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    shutil.copyfile(next((require_dataset() / "grass").iterdir()), tmp_path / "cats" / "a.jpg")
    (tmp_path / "cats" / "b.jpg").write_bytes(b"not an image")
    result = sprout(home, "evaluate", str(tmp_path))
    assert result["n"] == 1 and result["accuracy"] == 0.0  # a label the model does not know
    assert len(result["errors"]) == 1 and result["errors"][0]["file"].endswith("b.jpg")


def test_predict_export_fsck_and_rollback(home: Path, tmp_path: Path) -> None:
    dandelion = next((require_dataset() / "dandelion").iterdir())
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"%PDF-1.4 nope")
    out = sprout(home, "predict", str(dandelion), str(bad))
    good, refused = out["predictions"]
    assert good["label"] == "dandelion" and good["confidence"] > 0.5 and good["model_version"] == "1"
    assert good["unfamiliar"] is False and isinstance(good["abstained"], bool)  # a photo of a label it knows
    assert "PDF" in refused["error"]
    exported = sprout(home, "export", "--output", str(tmp_path / "m.onnx"))
    assert exported["version"] == "1" and (tmp_path / "m.onnx").stat().st_size == exported["bytes"]
    assert sprout(home, "fsck") == {"ok": True, "checked": 320, "restored": [], "removed_leftovers": [],
                                    "kept_recent": [], "missing": [], "orphans": []}
    refused_rollback = sprout(home, "rollback", ok=False)
    assert "first version" in refused_rollback["error"]


def test_users_add_reads_the_password_from_stdin_and_stores_only_a_hash(home: Path) -> None:
    added = sprout(home, "users", "add", "alice", stdin="correct horse battery\n")
    assert added["username"] == "alice" and added["is_admin"] is False and added["is_active"] is True
    assert "already exists" in sprout(home, "users", "add", "alice", stdin="another password\n", ok=False)["error"]
    assert "at least 12" in sprout(home, "users", "add", "bob", stdin="elevenchars\n", ok=False)["error"]
    engine = create_engine(f"sqlite:///{home / 'sprout.db'}")
    with engine.connect() as conn:
        stored = conn.execute(select(User.password_hash).where(User.username == "alice")).scalar_one()
    assert stored.startswith("$argon2") and "correct horse" not in stored


def test_account_lifecycle_list_disable_set_password_set_admin(home: Path) -> None:
    sprout(home, "users", "add", "carol", stdin="carol-password-1\n")
    assert sprout(home, "users", "set-admin", "carol")["is_admin"] is True
    assert sprout(home, "users", "set-admin", "carol", "--revoke")["is_admin"] is False
    assert sprout(home, "users", "disable", "carol")["is_active"] is False
    listed = {u["username"]: u for u in sprout(home, "users", "list")["users"]}
    assert listed["carol"]["is_active"] is False and "password_hash" not in listed["carol"]
    assert sprout(home, "users", "disable", "carol", "--enable")["is_active"] is True
    assert "at least 12" in sprout(home, "users", "set-password", "carol", stdin="short\n", ok=False)["error"]
    assert sprout(home, "users", "set-password", "carol", stdin="a-much-longer-secret\n")["username"] == "carol"
    assert "No user named" in sprout(home, "users", "disable", "nobody", ok=False)["error"]


def test_db_upgrade_on_a_fresh_home(tmp_path: Path) -> None:
    assert sprout(tmp_path / "fresh", "db", "upgrade")["upgraded"] is True
    assert (tmp_path / "fresh" / "sprout.db").exists()


def test_exit_codes_usage_is_2_and_a_refused_candidate_is_3(home: Path) -> None:
    usage = subprocess.run([SPROUT, "train", "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "No such option" in usage.stderr
    # Nobody reaches a cross-validated accuracy of 1.0 on the shared set: the candidate is refused.
    refused = sprout(home, "train", "--force", "--backbone", "efficientnet_lite0", ok=False, code=3,
                     gate_min_accuracy="1.0")
    assert refused["gate"]["passed"] is False and refused["promoted"] is False
    assert sprout(home, "status")["champion"]["version"] == refused["champion_version"]


def test_scoring_evaluating_and_exporting_refuse_an_artifact_sprout_did_not_train(home: Path, tmp_path: Path) -> None:
    """What the API refuses to serve, batch scoring (and the batch DAG, which runs it) refuses to use too."""
    from model.core.settings import Settings
    from model.runtime.services import Services
    from tests.api.conftest import register_version
    from tests.api.test_model_integrity import evil_twin

    svc = Services.from_settings(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    try:
        _, champion = svc.model_file()
        rogue = register_version(svc, evil_twin(champion), recorded=False)  # behind Sprout's back
        swapped = register_version(svc, evil_twin(champion), digest="0" * 64)  # its artifact changed since
    finally:
        svc.close()
    photo = next((require_dataset() / "dandelion").iterdir())
    exported = tmp_path / "m.onnx"
    for version, reason in ((rogue, "not registered by a Sprout training run"), (swapped, "differs from")):
        for args in (("predict", str(photo), "--model", version), ("export", "-o", str(exported), "--model", version)):
            refused = sprout(home, *args, ok=False)
            assert refused["type"] == "ArtifactRejectedError" and reason in refused["error"], refused
    refused = sprout(home, "evaluate", str(require_dataset()), "--model", swapped, ok=False)
    assert refused["type"] == "ArtifactRejectedError"
    assert not exported.exists()
    assert sprout(home, "predict", str(photo))["predictions"][0]["label"] == "dandelion"  # the champion still works


def test_select_candidate_applies_the_training_rule_to_assessed_answers(tmp_path: Path) -> None:
    """What the retrain DAG's select_candidate task runs: the lowest cross-validated log loss wins, every candidate
    tried comes back; no answers, or answers that are not `assess-candidate`'s, are a clear error (exit 1)."""
    assessed = [{"backbone": "efficientnet_lite0", "accuracy": 0.95, "log_loss": 0.21, "folds": 5},
                {"backbone": "efficientnet_lite1", "accuracy": 0.94, "log_loss": 0.18, "folds": 5}]
    chosen = sprout(tmp_path / "state", "select-candidate", "--assessed", json.dumps(assessed))
    assert chosen["backbone"] == "efficientnet_lite1"
    assert [(c["backbone"], c["log_loss"]) for c in chosen["tried"]] == [
        ("efficientnet_lite0", 0.21), ("efficientnet_lite1", 0.18)]
    none = sprout(tmp_path / "state", "select-candidate", "--assessed", "[]", ok=False, code=1)
    assert none == {"error": "no candidate was assessed", "type": "NotEnoughDataError"}
    wrong = sprout(tmp_path / "state", "select-candidate", "--assessed", '[{"backbone": "x"}]', ok=False, code=1)
    assert "--assessed must be a JSON list of `assess-candidate` answers" in wrong["error"]


def test_select_candidate_refuses_a_malformed_row_with_a_message(tmp_path: Path) -> None:
    """A row with the required keys but an unreadable interval is an error the DAG reads (one JSON object, exit 1),
    not a traceback its runner would retry as a crash."""
    row = {"backbone": "efficientnet_lite0", "accuracy": 0.9, "log_loss": 0.2, "accuracy_ci": []}
    wrong = sprout(tmp_path / "state", "select-candidate", "--assessed", json.dumps([row]), ok=False, code=1)
    assert wrong["type"] == "SproutError" and "--assessed" in wrong["error"], wrong
