"""Benchmark: /predict throughput at concurrency 16 vs the in-process ceiling, in one run.

Ceiling: decode + preprocess + ONNX Runtime at batch size 1, one single-thread session per core, each in
its own process, on the same exported model and the same JPEGs. Server: the real API (`uvicorn
api.main:app`) loaded by `wrk` (Debian package) with multipart uploads of those JPEGs. The two are measured in
short alternated rounds (ceiling, load, ceiling, load, ...; the server and the ceiling's processes stay up), so
a machine whose speed drifts during the run (shared cloud cores: ±10% within a minute) weighs on both sides of
the ratio alike.
Prints both throughputs, their ratio (target >= 0.9), the server's p50/p99 latency and its resident memory after
the load, then the p50 of sequential /predict calls with a 12-megapixel phone-sized JPEG against a small one (the
shared set's photos; target <= 2.5). With --capture, the
API is loaded again with production capture on for every prediction (SPROUT_CAPTURE_BELOW=1, into a copy of
the home) and the p50s are compared (target: capture on within 10% of off). With --shadow, a copy of the home
gets a challenger (a new candidate trained with SPROUT_ROLLOUT=shadow) that scores every request off the response
path (SPROUT_SHADOW_SHARE=1); both APIs run side by side and are measured in alternated rounds: /predict p50 at
concurrency 1 (target: shadow on within 10% of off) and the throughput at saturation (its cost, reported).

    python bench/serve.py [--seconds 10] [--rounds 6] [--concurrency 16] [--home DIR] [--capture] [--shadow]

Without --home it builds a fresh embedded home (imports the shared set and trains; about a minute).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench shares tests/utils
from tests.utils.images import photo_jpeg_bytes  # noqa: E402
from tests.utils.readiness import http_ok, wait_until_ready  # noqa: E402

DATASET = Path("../shared/datasets/dandelion-grass")
N_IMAGES = 32

LUA = r"""
local bodies = {}
local boundary = "----sproutbench"
function init(args)
  for i, path in ipairs(args) do
    local f = assert(io.open(path, "rb")); local data = f:read("*all"); f:close()
    bodies[i] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n" ..
                "Content-Type: image/jpeg\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"
  end
  counter = 0
end
function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/predict", {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}, body)
end
function done(summary, latency, requests)
  io.write(string.format("SPROUT requests=%d errors=%d p50=%.3f p99=%.3f duration=%.3f\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
"""


def _worker(model: str, images: list[bytes], commands: mp.Queue, out: mp.Queue) -> None:
    """A ceiling process: for each number of seconds it is sent, classify the images in a loop and put its rate."""
    from model.serving.predictor import Predictor

    predictor = Predictor.load(Path(model), threads=1)
    for data in images[:4]:  # warm-up
        predictor.predict_bytes(data)
    out.put(0.0)  # ready
    while (seconds := commands.get()) is not None:
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            predictor.predict_bytes(images[done % len(images)])
            done += 1
        out.put(done / (time.perf_counter() - start))


@contextmanager
def ceiling(model: Path, images: list[bytes], cores: int) -> Iterator[Callable[[float], float]]:
    """``measure(seconds)``: images/s of ``cores`` processes, each with one single-thread session, decode +
    preprocess + infer. The processes stay up between rounds (idle: blocked on their queue)."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    commands = [ctx.Queue() for _ in range(cores)]
    procs = [ctx.Process(target=_worker, args=(str(model), images, q, out)) for q in commands]
    for p in procs:
        p.start()
    for _ in procs:
        out.get()

    def measure(seconds: float) -> float:
        for q in commands:
            q.put(seconds)
        return sum(out.get() for _ in procs)

    try:
        yield measure
    finally:
        for q in commands:
            q.put(None)
        for p in procs:
            p.join()


def prepare_home(home: Path) -> None:
    env = {**os.environ, "SPROUT_HOME": str(home)}
    sprout = str(Path(sys.executable).with_name("sprout"))
    subprocess.run([sprout, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([sprout, "bootstrap", str(DATASET)], env=env, check=True, capture_output=True)


@contextmanager
def running_api(home: Path, extra_env: dict[str, str] | None = None, port: int | None = None,
                ) -> Iterator[tuple[str, int]]:
    """The real API (``uvicorn api.main:app``) on this home, ready: its URL and pid. Without the per-address
    prediction limit: all the load comes from 127.0.0.1 (tens of thousands of images a minute)."""
    port = port or 18000 + os.getpid() % 1000
    env = {**os.environ, "SPROUT_HOME": str(home), "SPROUT_PREDICTIONS_PER_MINUTE": "0", **(extra_env or {})}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("uvicorn")), "api.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], env=env)
    try:
        wait_until_ready(http_ok(f"http://127.0.0.1:{port}/readyz", timeout=2), what="the API", timeout=120,
                         proc=server, interval=0.5)
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def load(url: str, script: Path, files: list[Path], seconds: float, concurrency: int) -> dict[str, float]:
    """``wrk`` running ``script`` (``LUA``: multipart uploads of ``files``) for ``seconds``: requests/s, errors,
    p50 and p99 (ms)."""
    proc = subprocess.run(["wrk", "-d", f"{seconds:g}s", "-t", "1", "-c", str(concurrency), "--latency", "-s",
                           str(script), url, "--", *map(str, files)], capture_output=True, text=True, check=True)
    match = re.search(r"SPROUT requests=(\d+) errors=(\d+) p50=([\d.]+) p99=([\d.]+) duration=([\d.]+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    requests, errors, p50, p99, duration = (float(g) for g in match.groups())
    return {"requests": requests, "duration": duration, "rps": requests / duration, "errors": errors,
            "p50_ms": p50, "p99_ms": p99}


def resident_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo_latencies(url: str, files: list[Path], rounds: int = 20) -> tuple[float, float]:
    """p50 (ms) of sequential /predict calls: a 12 MP JPEG (a shared-set photo upscaled to 4000x3000, q90)
    and the small originals."""
    import statistics

    import httpx

    big = photo_jpeg_bytes((4000, 3000))
    small = [f.read_bytes() for f in files]
    times: dict[str, list[float]] = {"big": [], "small": []}
    with httpx.Client(timeout=60) as client:
        for i in range(rounds + 2):
            for kind, data in (("big", big), ("small", small[i % len(small)])):
                start = time.perf_counter()
                client.post(f"{url}/predict", files={"file": ("x.jpg", data, "image/jpeg")}).raise_for_status()
                if i >= 2:  # two warm-up rounds
                    times[kind].append(1000 * (time.perf_counter() - start))
    return statistics.median(times["big"]), statistics.median(times["small"])


def shadow_home(home: Path, copy: Path) -> None:
    """A copy of ``home`` whose new candidate (same data, trained with SPROUT_ROLLOUT=shadow) is the challenger."""
    shutil.copytree(home, copy)
    env = {**os.environ, "SPROUT_HOME": str(copy), "SPROUT_ROLLOUT": "shadow"}
    sprout = str(Path(sys.executable).with_name("sprout"))
    trained = subprocess.run([sprout, "train", "--force"], env=env, capture_output=True, text=True)
    status = subprocess.run([sprout, "--json", "rollout", "status"], env=env, capture_output=True, text=True)
    if '"open": true' not in status.stdout:
        sys.exit(f"no challenger: the candidate did not clear the gate\n{trained.stderr[-2000:]}")


def compare_shadow(home: Path, tmp: Path, script: Path, files: list[Path], seconds: float, rounds: int,
                   concurrency: int) -> None:
    """Shadow off (``home``) against on (a copy with a challenger scoring every request), side by side, alternated:
    p50 at concurrency 1 and throughput at ``concurrency``; prints their ratios and the challenger's agreement."""
    copy = tmp / "shadow-home"
    print("preparing a challenger: train a candidate with SPROUT_ROLLOUT=shadow ...", flush=True)
    shadow_home(home, copy)
    port = 18000 + os.getpid() % 1000
    off_p50, on_p50, off_rps, on_rps = [], [], [], []
    with running_api(home, port=port + 1) as (off, _), \
            running_api(copy, {"SPROUT_SHADOW_SHARE": "1"}, port=port + 2) as (on, on_pid):
        for url in (off, on):
            load(url, script, files, 3, 1)  # warm-up
        for r in range(rounds):
            off_p50.append(load(off, script, files, seconds, 1)["p50_ms"])
            on_p50.append(load(on, script, files, seconds, 1)["p50_ms"])
            off_rps.append(load(off, script, files, seconds, concurrency)["rps"])
            on_rps.append(load(on, script, files, seconds, concurrency)["rps"])
            print(f"shadow round {r + 1}: p50 off {off_p50[-1]:.1f} ms, on {on_p50[-1]:.1f} ms; "
                  f"at {concurrency}: off {off_rps[-1]:.1f} img/s, on {on_rps[-1]:.1f} img/s", flush=True)
        rss = resident_mb(on_pid)
        import httpx

        summary = httpx.get(f"{on}/rollouts", timeout=60).json()["rollouts"][0]
    p50_off, p50_on = sorted(off_p50)[len(off_p50) // 2], sorted(on_p50)[len(on_p50) // 2]
    print(f"shadow at 100%: /predict p50 at concurrency 1 off {p50_off:.1f} ms, on {p50_on:.1f} ms; "
          f"ratio on/off = {p50_on / p50_off:.3f}  (target <= 1.10; median of {rounds} alternated rounds)")
    print(f"shadow at 100%: throughput at concurrency {concurrency} off {sum(off_rps) / rounds:.1f} img/s, on "
          f"{sum(on_rps) / rounds:.1f} img/s; ratio on/off = {sum(on_rps) / sum(off_rps):.3f} (the challenger "
          "scores every image on the same cores)")
    print(f"API with champion + challenger: {rss:.0f} MB resident; {summary['summary']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="Length of each ceiling and each load round.")
    parser.add_argument("--rounds", type=int, default=6, help="Ceiling and API rounds, alternated.")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--home", type=Path, help="An embedded home with a champion (default: build one).")
    parser.add_argument("--capture", action="store_true", help="Also compare p50 with production capture on.")
    parser.add_argument("--shadow", action="store_true",
                        help="Only compare shadow scoring at 100%% on against off (p50 at concurrency 1, throughput).")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    files = sorted(DATASET.glob("*/*.jpg"))[:: max(1, len(list(DATASET.glob("*/*.jpg"))) // N_IMAGES)][:N_IMAGES]
    images = [f.read_bytes() for f in files]
    cores = os.cpu_count() or 1
    ceilings: list[float] = []
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        if args.home is None:
            print("preparing a home: import + train ...", flush=True)
            prepare_home(home)
        model = next((home / "cache" / "models").rglob("model.onnx"), None)
        if model is None:
            subprocess.run([str(Path(sys.executable).with_name("sprout")), "export", "--output",
                            str(Path(tmp) / "model.onnx")], env={**os.environ, "SPROUT_HOME": str(home)}, check=True)
            model = Path(tmp) / "model.onnx"
        script = Path(tmp) / "predict.lua"
        script.write_text(LUA)
        if args.shadow:
            compare_shadow(home, Path(tmp), script, files, args.seconds, args.rounds, args.concurrency)
            return
        with running_api(home) as (url, pid), ceiling(model, images, cores) as measure_ceiling:
            load(url, script, files, 3, args.concurrency)  # warm-up
            for r in range(args.rounds):  # alternated: a machine that speeds up or slows down weighs on both
                ceilings.append(measure_ceiling(args.seconds))
                rounds.append(load(url, script, files, args.seconds, args.concurrency))
                print(f"round {r + 1}: ceiling {ceilings[-1]:6.1f} img/s, API {rounds[-1]['rps']:6.1f} img/s, "
                      f"ratio {rounds[-1]['rps'] / ceilings[-1]:.3f}", flush=True)
            rss = resident_mb(pid)
            big, small = photo_latencies(url, files)
        captured = None
        if args.capture:
            copy = Path(tmp) / "capture-home"
            shutil.copytree(home, copy)
            with running_api(copy, {"SPROUT_CAPTURE_BELOW": "1", "SPROUT_CAPTURE_PER_HOUR": "100000",
                                    "SPROUT_CAPTURE_PER_DAY": "100000"}) as (capture_url, _):
                load(capture_url, script, files, 3, args.concurrency)
                captured = load(capture_url, script, files, args.seconds, args.concurrency)
    ceil = sum(ceilings) / len(ceilings)
    api = sum(r["requests"] for r in rounds) / sum(r["duration"] for r in rounds)
    last = rounds[-1]
    print(f"in-process ceiling  {ceil:7.1f} img/s  ({cores} processes x 1-thread ONNX Runtime, bs1, with decode)")
    print(f"API /predict        {api:7.1f} img/s  (wrk, concurrency {args.concurrency}, "
          f"{int(sum(r['errors'] for r in rounds))} errors)")
    print(f"latency (last round) p50 {last['p50_ms']:.1f} ms   p99 {last['p99_ms']:.1f} ms")
    print(f"ratio API/ceiling = {api / ceil:.3f}  (target >= 0.9; {args.rounds} alternated rounds of "
          f"{args.seconds:g} s)")
    print(f"API resident memory after {args.rounds * args.seconds + 3:g} s of load: {rss:.0f} MB  "
          "(target <= 450 after 60 s at 16)")
    print(f"/predict p50, one at a time: 12 MP JPEG {big:.1f} ms, small JPEG {small:.1f} ms; ratio = "
          f"{big / small:.2f}  (target <= 2.5)")
    if captured is not None:
        print(f"capture on (every prediction offered): {captured['rps']:.1f} img/s, p50 {captured['p50_ms']:.1f} ms")
        print(f"ratio p50 capture on/off = {captured['p50_ms'] / last['p50_ms']:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
