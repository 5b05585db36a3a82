"""Benchmark: a full retrain on the shared data set vs a retrain after 10 new approved samples.

Both run in one process on a fresh embedded-mode home (SQLite + local store + local MLflow), after
one warm-up that loads the backbone, so the figures compare the work a retrain does, not imports.
Prints both times and their ratio (target: incremental / full ≤ 0.2).

    python bench/retrain.py [--dataset DIR] [--backbones NAME,NAME,...]

The default tries every candidate backbone a run tries by default (SPROUT_CANDIDATE_BACKBONES).
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
