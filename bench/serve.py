"""Benchmark: /predict throughput at concurrency 8 vs the in-process ceiling, in one run.

Ceiling: decode + preprocess + ONNX Runtime at batch size 1, one single-thread session per core, each in
its own process, on the same exported model and the same JPEGs. Server: the real API (`uvicorn
api.main:app`) loaded by `wrk` (Debian package) with multipart uploads of those JPEGs.
Prints both throughputs, their ratio (target >= 0.9), the server's p50/p99 latency and its resident memory after
the load, then the p50 of sequential /predict calls with a 12-megapixel phone-sized JPEG against a small one (the
shared set's photos; target <= 2.5). With --capture, the
API is loaded again with production capture on for every prediction (SPROUT_CAPTURE_BELOW=1, into a copy of
the home) and the p50s are compared (target: capture on within 10% of off).

    python bench/serve.py [--seconds 20] [--concurrency 8] [--home DIR] [--capture]

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


def _worker(model: str, images: list[bytes], seconds: float, out: mp.Queue) -> None:
    from model.serving.predictor import Predictor

    predictor = Predictor.load(Path(model), threads=1)
    for data in images[:4]:  # warm-up
        predictor.predict_bytes(data)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.predict_bytes(images[done % len(images)])
        done += 1
    out.put(done / (time.perf_counter() - start))


def ceiling(model: Path, images: list[bytes], seconds: float, cores: int) -> float:
    """Images/s of `cores` processes, each with one single-thread session, decode + preprocess + infer."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(model), images, seconds, out)) for _ in range(cores)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def prepare_home(home: Path) -> None:
    env = {**os.environ, "SPROUT_HOME": str(home)}
    sprout = str(Path(sys.executable).with_name("sprout"))
    subprocess.run([sprout, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([sprout, "bootstrap", str(DATASET)], env=env, check=True, capture_output=True)


def serve_and_load(home: Path, files: list[Path], seconds: float, concurrency: int,
                   extra_env: dict[str, str] | None = None) -> dict[str, float]:
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "SPROUT_HOME": str(home), **(extra_env or {})}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("uvicorn")), "api.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], env=env)
    try:
        wait_until_ready(http_ok(f"http://127.0.0.1:{port}/readyz", timeout=2), what="the API", timeout=120,
                         proc=server, interval=0.5)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
            lua.write(LUA)
        base = ["wrk", "-t", "1", "-c", str(concurrency), "--latency", "-s", lua.name, f"http://127.0.0.1:{port}"]
        subprocess.run([*base[:1], "-d", "3s", *base[1:], "--", *map(str, files)], capture_output=True)  # warm-up
        proc = subprocess.run([*base[:1], "-d", f"{seconds:g}s", *base[1:], "--", *map(str, files)],
                              capture_output=True, text=True, check=True)
        match = re.search(r"SPROUT requests=(\d+) errors=(\d+) p50=([\d.]+) p99=([\d.]+) duration=([\d.]+)",
                          proc.stdout)
        assert match, proc.stdout + proc.stderr
        requests, errors, p50, p99, duration = (float(g) for g in match.groups())
        rss = resident_mb(server.pid)
        big, small = photo_latencies(f"http://127.0.0.1:{port}", files)
        return {"rps": requests / duration, "errors": errors, "p50_ms": p50, "p99_ms": p99, "rss_mb": rss,
                "p50_12mp_ms": big, "p50_small_ms": small}
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--home", type=Path, help="An embedded home with a champion (default: build one).")
    parser.add_argument("--capture", action="store_true", help="Also compare p50 with production capture on.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    files = sorted(DATASET.glob("*/*.jpg"))[:: max(1, len(list(DATASET.glob("*/*.jpg"))) // N_IMAGES)][:N_IMAGES]
    images = [f.read_bytes() for f in files]
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
        cores = os.cpu_count() or 1
        ceil = ceiling(model, images, args.seconds, cores)
        served = serve_and_load(home, files, args.seconds, args.concurrency)
        captured = None
        if args.capture:
            copy = Path(tmp) / "capture-home"
            shutil.copytree(home, copy)
            captured = serve_and_load(copy, files, args.seconds, args.concurrency, {
                "SPROUT_CAPTURE_BELOW": "1", "SPROUT_CAPTURE_PER_HOUR": "100000", "SPROUT_CAPTURE_PER_DAY": "100000"})
    print(f"in-process ceiling  {ceil:7.1f} img/s  ({cores} processes x 1-thread ONNX Runtime, bs1, with decode)")
    print(f"API /predict        {served['rps']:7.1f} img/s  (wrk, concurrency {args.concurrency}, "
          f"{int(served['errors'])} errors)")
    print(f"latency             p50 {served['p50_ms']:.1f} ms   p99 {served['p99_ms']:.1f} ms")
    print(f"ratio API/ceiling = {served['rps'] / ceil:.3f}  (target >= 0.9)")
    print(f"API resident memory after the load: {served['rss_mb']:.0f} MB  (target <= 450 after 60 s at 16)")
    print(f"/predict p50, one at a time: 12 MP JPEG {served['p50_12mp_ms']:.1f} ms, small JPEG "
          f"{served['p50_small_ms']:.1f} ms; ratio = {served['p50_12mp_ms'] / served['p50_small_ms']:.2f}  "
          "(target <= 2.5)")
    if captured is not None:
        print(f"capture on (every prediction offered): {captured['rps']:.1f} img/s, p50 {captured['p50_ms']:.1f} ms")
        print(f"ratio p50 capture on/off = {captured['p50_ms'] / served['p50_ms']:.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
