"""Benchmark: a full retrain on the shared data set vs a retrain after 10 new approved samples.

Both run in one process on a fresh embedded-mode home (SQLite + local store + local MLflow), after
one warm-up that loads the backbone, so the figures compare the work a retrain does, not imports.
Prints both times and their ratio (target: incremental / full ≤ 0.2).

With --processes, both are whole `sprout train` processes instead (imports, model builds and MLflow logging
included), the full one on --images images (the shared set plus mirrored and cropped copies of it):
target incremental / full ≤ 0.15.

    python bench/retrain.py [--dataset DIR] [--backbones NAME,NAME,...] [--processes [--images 700]]

The default tries every candidate backbone a run tries by default (SPROUT_CANDIDATE_BACKBONES).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from db.migrate import upgrade
from db.models import SampleSource
from model.core.settings import Settings
from model.data.importer import find_labeled_files
from model.data.samples import add_sample
from model.learning.backbones import load_backbone
from model.learning.promotion import train
from model.runtime.services import Services

HELD_OUT = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/dandelion-grass"))
    parser.add_argument("--backbones", default=Settings(_env_file=None).candidate_backbones,
                        help="comma-separated candidate backbones (default: the product default)")
    parser.add_argument("--processes", action="store_true", help="time whole `sprout train` processes")
    parser.add_argument("--images", type=int, default=700, help="with --processes: images of the full retrain")
    args = parser.parse_args()
    if args.processes:
        return as_processes(args.dataset, args.backbones, args.images)
    files = find_labeled_files(args.dataset)
    held_out = files[:: len(files) // HELD_OUT][:HELD_OUT]
    initial = [f for f in files if f not in held_out]
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), candidate_backbones=args.backbones)
        upgrade(settings.resolved_database_url)
        svc = Services.from_settings(settings)
        for name in settings.candidate_backbone_names:  # warm-up: weights and imports, paid once per worker
            load_backbone(name, settings)
        with svc.session() as session:
            for label, path in initial:
                add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT, label=label)
        t0 = time.perf_counter()
        full = train(svc, force=True)
        t_full = time.perf_counter() - t0
        with svc.session() as session:
            for label, path in held_out:
                add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT, label=label)
        t0 = time.perf_counter()
        inc = train(svc)
        t_inc = time.perf_counter() - t0
    print(f"candidates          {args.backbones} (winner {full.backbone}, then {inc.backbone})")
    print(f"full retrain        {t_full:7.2f} s  ({full.n_embedded} images embedded, version {full.version})")
    print(f"after {HELD_OUT} approvals  {t_inc:7.2f} s  ({inc.n_embedded} images embedded, "
          f"gate {'passed' if inc.gate and inc.gate.passed else 'refused'})")
    print(f"ratio incremental/full = {t_inc / t_full:.3f}  (target <= 0.2)")


def as_processes(dataset: Path, backbones: str, n_images: int) -> None:
    """Whole `sprout train --force` on ``n_images``, then a whole `sprout train` after 10 new approvals."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.utils.datasets import augmented_copy

    files = find_labeled_files(dataset)
    held_out = files[:: len(files) // HELD_OUT][:HELD_OUT]
    initial = [f for f in files if f not in held_out]
    sprout = str(Path(sys.executable).with_name("sprout"))
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "SPROUT_HOME": home, "SPROUT_CANDIDATE_BACKBONES": backbones}
        subprocess.run([sprout, "db", "upgrade"], env=env, check=True, capture_output=True)
        settings = Settings(_env_file=None, home=Path(home))  # type: ignore[call-arg]
        svc = Services.from_settings(settings)
        with svc.session() as session:
            plan = [(label, path, variant) for variant in range(10) for label, path in initial][:n_images]
            for label, path, variant in plan:  # the originals, then mirrored and cropped copies
                data = path.read_bytes() if variant == 0 else augmented_copy(path.read_bytes(), variant)
                add_sample(session, svc.store, data=data, source=SampleSource.IMPORT, label=label)
            n = queries_count(session)
        svc.close()

        def timed(*args: str) -> tuple[float, dict]:
            start = time.perf_counter()
            proc = subprocess.run([sprout, "--json", *args], env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if proc.returncode not in (0, 3):
                sys.exit(proc.stderr[-3000:])
            return elapsed, json.loads(proc.stdout.strip().splitlines()[-1])

        t_full, full = timed("train", "--force")
        svc = Services.from_settings(settings)
        with svc.session() as session:
            for label, path in held_out:
                add_sample(session, svc.store, data=path.read_bytes(), source=SampleSource.IMPORT, label=label)
        svc.close()
        t_inc, inc = timed("train")
    print(f"candidates          {backbones} (winner {full['backbone']}, then {inc['backbone']})")
    print(f"full retrain        {t_full:7.2f} s  whole process, {n} images ({full['n_embedded']} embedded)")
    print(f"after {HELD_OUT} approvals  {t_inc:7.2f} s  whole process ({inc['n_embedded']} embedded)")
    print(f"ratio incremental/full = {t_inc / t_full:.3f}  (target <= 0.15)")


def queries_count(session: object) -> int:
    from db.models import SampleStatus
    from db.queries import count_samples

    return count_samples(session, status=SampleStatus.APPROVED)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
