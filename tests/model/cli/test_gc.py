"""`sprout gc` as an operator runs it on an embedded home: a report by default, `--apply` to delete, the
retention settings from the environment, and a second run that finds nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import func, select

from db.models import RevokedToken, Sample, SampleSource
from model.core.settings import Settings
from model.data.samples import add_sample
from model.review.actions import review_sample
from model.runtime.services import Services
from tests.utils.services import TEST_SPLIT_KEY, migrated_services

SPROUT = str(Path(sys.executable).with_name("sprout"))


def gc(home: Path, *args: str, json_output: bool = True, settings: dict[str, str] | None = None,
       ) -> subprocess.CompletedProcess[str]:
    """`sprout [--json] gc ARGS` with an embedded home and these ``SPROUT_*`` settings (lower case, no prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPROUT_")} | {
        "SPROUT_HOME": str(home), "SPROUT_SPLIT_KEY": TEST_SPLIT_KEY} | {
        f"SPROUT_{key.upper()}": value for key, value in (settings or {}).items()}
    argv = [SPROUT, *(["--json"] if json_output else []), "gc", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=home.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def report(home: Path, *args: str, **settings: str) -> dict[str, tuple[int, int]]:
    """``{rule: (found, deleted)}`` of `sprout --json gc ARGS`, whose stdout is one JSON object."""
    [line] = gc(home, *args, settings=settings).stdout.splitlines()
    return {r["name"]: (r["found"], r["deleted"]) for r in json.loads(line)["rules"]}


def state(svc: Services) -> tuple[list[str], int, int]:
    """Every object key, and the samples and revocations the database holds."""
    with svc.session() as session:
        samples = session.scalar(select(func.count()).select_from(Sample))
        tokens = session.scalar(select(func.count()).select_from(RevokedToken))
    return sorted(svc.store.list()), int(samples or 0), int(tokens or 0)


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (seed * 50 % 256, 120, seed * 7 % 256)).save(buf, format="PNG")
    return buf.getvalue()


def test_gc_reports_then_applies_then_finds_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    svc = migrated_services(Settings(home=home))
    long_ago = datetime.now(UTC) - timedelta(days=60)
    with svc.session() as session:
        for seed, label in enumerate(("cat", "dog", "bird")):
            add_sample(session, svc.store, data=png(seed), source=SampleSource.UPLOAD, label=label)
        rejected, _ = add_sample(session, svc.store, data=png(7), source=SampleSource.CAPTURE)
        review_sample(session, svc.store, sample_id=rejected.id, action="reject", reviewer="ann")
        row = session.get(Sample, rejected.id)
        assert row is not None
        row.updated_at, rejected_key = long_ago, row.object_key
        add_sample(session, svc.store, data=png(8), source=SampleSource.UPLOAD)  # the newest: pending
        session.add(RevokedToken(jti="logged-out", expires_at=long_ago))
        session.commit()
    orphan = f"labeled/bird/{'c' * 64}.png"
    svc.store.put(orphan, png(9))
    os.utime(svc.settings.objects_dir / orphan, (long_ago.timestamp(), long_ago.timestamp()))

    before = state(svc)
    assert len(before[0]) == 6 and before[1:] == (5, 1)
    nothing_else = {"recent_predictions": (0, 0), "rollout_observations": (0, 0), "training_run_samples": (0, 0),
                    "out_of_fold": (0, 0), "embeddings": (0, 0)}
    # Rejected 60 days ago: kept under the default 90 days, found under SPROUT_RETAIN_REJECTED_DAYS=30.
    assert report(home) == nothing_else | {"revoked_tokens": (1, 0), "rejected_samples": (0, 0), "objects": (1, 0)}
    found = nothing_else | {"revoked_tokens": (1, 0), "rejected_samples": (1, 0), "objects": (1, 0)}
    assert report(home, retain_rejected_days="30") == found
    human = gc(home, json_output=False, settings={"retain_rejected_days": "30"})
    assert "rejected_samples: 1 found" in human.stderr and "sprout gc --apply" in human.stderr and human.stdout == ""
    assert state(svc) == before  # reports change nothing

    held_back = report(home, "--apply", "--max-orphans", "0", retain_rejected_days="30")
    assert held_back["objects"] == (1, 0)  # more orphan images than allowed: none deleted, the rest applied
    assert held_back["rejected_samples"] == (1, 1) and held_back["revoked_tokens"] == (1, 1)
    applied = report(home, "--apply", retain_rejected_days="30")
    assert applied == nothing_else | {"revoked_tokens": (0, 0), "rejected_samples": (0, 0), "objects": (1, 1)}
    with svc.session() as session:
        assert session.scalar(select(func.count()).select_from(Sample)) == 4
        assert session.get(Sample, rejected.id) is None
    assert rejected_key not in set(svc.store.list()) and orphan not in set(svc.store.list())
    assert report(home, "--apply", retain_rejected_days="30") == dict.fromkeys(found, (0, 0))
