"""Benchmark: resident memory of the stack `make up` runs, per service and in total (target: ≤ 2.5 GB idle).

Reads the pid files `make up` wrote (`$SPROUT_HOME/run/*.pid`, one process group per service, and the real
stack's PostgreSQL), waits until the
stack has been idle for ``--settle`` seconds, then sums each group's proportional set size (PSS, from
``/proc/PID/smaps_rollup``: memory shared between a server's forked workers counts once) and its plain RSS.

    make up && python bench/stack_memory.py [--home .sprout] [--settle 60]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

TARGET_MB = 2500


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid:
                members.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
    return members


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in kB (0, 0 once it is gone)."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    fields = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.split()[-1] == "kB"}
    return fields.get("Pss", 0), fields.get("Rss", 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("SPROUT_HOME", ".sprout")))
    parser.add_argument("--settle", type=float, default=60, help="seconds to wait for the stack to go idle")
    args = parser.parse_args()
    groups = {pidfile.stem: int(pidfile.read_text().strip()) for pidfile in sorted((args.home / "run").glob("*.pid"))}
    if not groups:
        raise SystemExit(f"no pid files in {args.home / 'run'}: run `make up` first")
    postmaster = args.home / "stack" / "pg" / "postmaster.pid"  # the real stack's PostgreSQL (under pg_ctl)
    if postmaster.is_file():
        groups["postgresql"] = os.getpgid(int(postmaster.read_text().split()[0]))
    time.sleep(args.settle)
    total_pss = total_rss = 0
    print(f"{'service':<12} {'processes':>9} {'PSS MB':>8} {'RSS MB':>8}")
    for name, pgid in groups.items():
        members = group_members(pgid)
        pss, rss = (sum(values) for values in zip(*(memory_kb(pid) for pid in members), strict=True)) \
            if members else (0, 0)
        total_pss, total_rss = total_pss + pss, total_rss + rss
        print(f"{name:<12} {len(members):>9} {pss / 1024:>8.0f} {rss / 1024:>8.0f}")
    print(f"{'total':<12} {'':>9} {total_pss / 1024:>8.0f} {total_rss / 1024:>8.0f}")
    print(f"idle stack PSS = {total_pss / 1024:.0f} MB  (target <= {TARGET_MB} MB)")


if __name__ == "__main__":
    main()
