"""``sprout labels`` as an admin runs it (separate processes, one JSON object with --json), and a rename killed
(SIGKILL) between its copies and its commit or between its commit and its deletes: ``sprout fsck`` then leaves
every row with its object and nothing else, on PostgreSQL and S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from db import queries
from db.models import Review, SampleStatus
from model.core.settings import Settings
from tests import servers
from tests.utils.datasets import scenes_tree
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

SPROUT = str(Path(sys.executable).with_name("sprout"))
SCENES = {"buildings": 3, "forest": 3, "glacier": 2, "sea": 3, "street": 2}
ADMIN_PASSWORD = "an-admin-password"


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, dict[str, Any] | None]:
    """``sprout --json ARGS``: its exit code and its one JSON object (None when it printed none)."""
    proc = subprocess.run([SPROUT, "--json", *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) <= 1, proc.stdout[:2000]
    return proc.returncode, json.loads(lines[0]) if lines else None


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> dict[str, Any]:
    code, answer = run(env, *args, stdin=stdin)
    assert code == 0 and answer is not None, (code, answer)
    return answer


def prepared(env: dict[str, str], tmp_path: Path) -> None:
    """Migrated, the scenes imported, an admin ``boss`` and a reviewer ``rita``."""
    ok(env, "db", "upgrade")
    assert ok(env, "import", str(scenes_tree(tmp_path / "scenes", SCENES)))["added_by_label"] == SCENES
    ok(env, "users", "add", "boss", "--admin", stdin=ADMIN_PASSWORD + "\n")
    ok(env, "users", "add", "rita", stdin=ADMIN_PASSWORD + "\n")


def embedded(tmp_path: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(tmp_path / "home"), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY}


def test_rename_merge_retire_and_list_with_json_and_exit_codes(tmp_path: Path) -> None:
    env = embedded(tmp_path)
    prepared(env, tmp_path)
    renamed = ok(env, "labels", "rename", "sea", "ocean", "--by", "boss")
    assert (renamed["kind"], renamed["label"], renamed["into"], renamed["changed_by"], renamed["approved"]) == (
        "rename", "sea", "ocean", "boss", 3)
    assert renamed["retrain"]["triggered"] is False and "`sprout train` trains now" in renamed["retrain"]["detail"]
    assert ok(env, "labels", "merge", "glacier", "--into", "forest", "--by", "boss")["approved"] == 2
    assert ok(env, "labels", "retire", "street", "--by", "boss")["into"] is None
    listed = ok(env, "labels", "list")
    assert {row["label"]: row["approved"] for row in listed["labels"]} == {"buildings": 3, "forest": 5, "ocean": 3}
    assert [c["kind"] for c in listed["changes"]] == ["retire", "merge", "rename"]

    code, refused = run(env, "labels", "rename", "forest", "woods", "--by", "rita")
    assert code == 1 and refused == {"error": "'rita' is not an active admin account (sprout users set-admin "
                                              "NAME).", "type": "ConfigurationError"}
    code, unknown = run(env, "labels", "retire", "lake", "--by", "boss")
    assert code == 1 and unknown["type"] == "NotFoundError" and "'lake'" in unknown["error"]
    code, itself = run(env, "labels", "merge", "forest", "--into", "forest", "--by", "boss")
    assert code == 1 and itself["type"] == "InvalidLabelError"
    code, _ = run(env, "labels", "rename", "forest", "woods")  # no --by: a usage error
    assert code == 2
    human = subprocess.run([SPROUT, "labels", "rename", "ocean", "sea", "--by", "boss"], capture_output=True,
                           text=True, env=env, timeout=600)
    assert human.returncode == 0 and "rename ocean → sea by boss (3 approved, 0 pending" in human.stderr


@pytest.mark.integration
@pytest.mark.parametrize("point", ["move.after_copy", "move.after_commit"])
def test_a_rename_killed_mid_move_loses_nothing_and_fsck_repairs_it(
        tmp_path: Path, fresh_pg_url: str, s3_server: servers.S3Server, point: str) -> None:
    env = embedded(tmp_path) | {
        "SPROUT_DATABASE_URL": fresh_pg_url, "SPROUT_S3_ENDPOINT": s3_server.endpoint,
        "SPROUT_S3_ACCESS_KEY": s3_server.access_key, "SPROUT_S3_SECRET_KEY": s3_server.secret_key,
        "SPROUT_S3_BUCKET": f"labels-{uuid.uuid4().hex[:8]}"}
    prepared(env, tmp_path)
    svc = migrated_services(Settings(_env_file=None, **{k.removeprefix("SPROUT_").lower(): v  # type: ignore[arg-type]
                                                        for k, v in env.items() if k.startswith("SPROUT_")}))
    with svc.session() as session:
        sea = {s.id: s.object_key for s in queries.approved_with_label(session, label="sea")}
    moved = {key.replace("labeled/sea/", "labeled/ocean/") for key in sea.values()}

    code, _ = run(env | {"SPROUT_CRASH_AT": point}, "labels", "rename", "sea", "ocean", "--by", "boss")
    assert code == -9, "the crash point did not kill the command"
    keys = set(svc.store.list())
    assert set(sea.values()) | moved <= keys  # both copies of every moved object
    with svc.session() as session:
        labels = Counter(s.label for s in queries.approved_samples(session))
        audit = session.query(Review).count()
    committed = point == "move.after_commit"
    assert labels == Counter({k if k != "sea" or not committed else "ocean": v for k, v in SCENES.items()})
    assert audit == (3 if committed else 0)  # all or nothing: one transaction

    report = ok(env, "fsck", "--grace-minutes", "0")
    assert report["ok"] and not report["missing"] and not report["orphans"], report
    assert set(report["removed_leftovers"]) == (set(sea.values()) if committed else moved), report
    with svc.session() as session:
        rows = queries.all_samples(session)
        assert {row.object_key for row in rows} == set(svc.store.list())  # one object per row, where it says
        assert all(row.status is SampleStatus.APPROVED for row in rows)
    if not committed:  # the admin runs it again: it goes through
        assert ok(env, "labels", "rename", "sea", "ocean", "--by", "boss")["approved"] == 3
        with svc.session() as session:
            assert {row.object_key for row in queries.all_samples(session)} == set(svc.store.list())
    svc.close()
