"""Soak benchmark: mixed traffic against the real API for a while, at a fixed concurrency.

Predictions (60%), uploads of new images (20%), reviews of the pending queue (10%) and /metrics scrapes (10%)
from CONCURRENCY workers for SECONDS against `uvicorn api.main:app` on 127.0.0.1. Prints the request count,
the 5xx count (must be 0), p50/p99 per kind and the API's resident memory at the start and the end.

    python bench/soak.py [--seconds 600] [--concurrency 16] [--home DIR]

Without --home it builds a fresh embedded home (imports the shared set and trains; about a minute).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench shares tests/utils
from tests.utils.images import random_image_bytes  # noqa: E402
from tests.utils.readiness import http_ok, wait_until_ready  # noqa: E402

DATASET = Path("../shared/datasets/dandelion-grass")
REVIEWER, PASSWORD = "soak-reviewer", "soak-reviewer-password"
MIX = [("predict", 0.6), ("upload", 0.2), ("review", 0.1), ("metrics", 0.1)]


def sprout(home: Path, *args: str, stdin: str | None = None) -> None:
    cli = str(Path(sys.executable).with_name("sprout"))
    subprocess.run([cli, *args], env={**os.environ, "SPROUT_HOME": str(home)}, input=stdin, text=True, check=True,
                   capture_output=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Soak:
    """The workers' shared state: photos to classify, a seed counter for new uploads, the results."""

    def __init__(self, base: str, photos: list[bytes], token: str) -> None:
        self.base, self.photos, self.token = base, photos, token
        self.lock = threading.Lock()
        self.seed = 1_000_000
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[int, int] = defaultdict(int)

    def next_seed(self) -> int:
        with self.lock:
            self.seed += 1
            return self.seed

    def one(self, client: httpx.Client, kind: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        start = time.perf_counter()
        if kind == "predict":
            resp = client.post("/predict", files={"file": ("p.jpg", random.choice(self.photos), "image/jpeg")})
        elif kind == "upload":
            data = random_image_bytes("JPEG", size=(160, 120), seed=self.next_seed())
            resp = client.post("/samples", files={"file": ("u.jpg", data, "image/jpeg")})
        elif kind == "review":
            queue = client.get("/admin/samples", params={"limit": 5, "order": "newest"}, headers=headers)
            items = queue.json().get("data", []) if queue.status_code == 200 else []
            resp = queue
            if items:
                pick = random.choice(items)
                action = random.choice(["approve", "reject"])
                resp = client.post(f"/admin/samples/{pick['id']}/review", headers=headers,
                                   json={"action": action, "label": "grass" if action == "approve" else None})
        else:
            resp = client.get("/metrics")
        took = time.perf_counter() - start
        with self.lock:
            self.latency[kind].append(took)
            self.status[resp.status_code] += 1

    def worker(self, deadline: float) -> None:
        kinds, weights = zip(*MIX, strict=True)
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while time.monotonic() < deadline:
                kind = random.choices(kinds, weights)[0]
                try:
                    self.one(client, kind)
                except httpx.HTTPError:
                    with self.lock:
                        self.status[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        if args.home is None:
            sprout(home, "db", "upgrade")
            sprout(home, "bootstrap", str(DATASET))
        try:
            sprout(home, "users", "add", REVIEWER, stdin=PASSWORD + "\n")
        except subprocess.CalledProcessError:
            pass  # exists from an earlier soak of this home
        port = 19000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([str(Path(sys.executable).with_name("uvicorn")), "api.main:app", "--host",
                                   "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                                  env={**os.environ, "SPROUT_HOME": str(home)})
        try:
            wait_until_ready(http_ok(f"{base}/readyz"), what="the API", timeout=120, proc=server)
            token = httpx.post(f"{base}/auth/token", data={"username": REVIEWER, "password": PASSWORD}
                               ).json()["access_token"]
            photos = [p.read_bytes() for p in sorted(DATASET.glob("*/*.jpg"))[:32]]
            soak = Soak(base, photos, token)
            rss_start = rss_mb(server.pid)
            deadline = time.monotonic() + args.seconds
            with ThreadPoolExecutor(args.concurrency) as pool:
                for _ in range(args.concurrency):
                    pool.submit(soak.worker, deadline)
            rss_end = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    total = sum(soak.status.values())
    errors = sum(n for code, n in soak.status.items() if code >= 500 or code == 0)
    print(f"soak: {args.seconds:g} s at concurrency {args.concurrency}: {total} requests "
          f"({total / args.seconds:.1f}/s), status counts {dict(sorted(soak.status.items()))}")
    for kind, times in sorted(soak.latency.items()):
        times.sort()
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        print(f"  {kind:8s} n={len(times):6d}  p50 {statistics.median(times) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms")
    print(f"  5xx or failed: {errors} (must be 0)")
    print(f"  API RSS: {rss_start:.0f} MB at start, {rss_end:.0f} MB at the end")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
