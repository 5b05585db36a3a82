"""Memory under worst-case uploads: 8 concurrent ``/samples`` and ``/predict`` requests of ~24 MP images (16-bit
PNGs and JPEGs, the largest the default limit accepts) against the real API; prints the API's resident memory
before, its peak (VmRSS sampled every 50 ms) and the growth (the issue's bound: 300 MB).

    python bench/upload_memory.py [--rounds 3]

Builds a fresh embedded home (20 + 20 photos imported and trained, about a minute) unless --home is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench shares tests/utils
from tests.utils.images import gradient_png, photo_jpeg_bytes  # noqa: E402
from tests.utils.live_api import prepare_home, serve  # noqa: E402
from tests.utils.process_memory import api_pid, status_kb  # noqa: E402

WIDTH, HEIGHT = 5999, 4000  # 23.996 MP: just under the default SPROUT_MAX_IMAGE_MEGAPIXELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sprout-upload-memory-"))
    home = args.home or prepare_home(tmp)
    bombs = []
    for i in range(4):  # distinct images: uploads are deduplicated by content
        bombs.append(("png", gradient_png(WIDTH, HEIGHT - i, bit_depth=16, grey=True)))
        bombs.append(("jpg", photo_jpeg_bytes((WIDTH, HEIGHT - i), index=i)))
    sizes = ", ".join(f"{len(b) / 1e6:.1f} MB {kind}" for kind, b in bombs[:2])
    with serve(home, env={"SPROUT_UPLOADS_PER_MINUTE": "1000"}) as api:
        port = int(api.url.rsplit(":", 1)[1])
        pid = api_pid(port)
        with httpx.Client(timeout=120) as client:  # warm up: one prediction, one upload of a small photo
            client.post(f"{api.url}/predict", files={"file": ("w.jpg", photo_jpeg_bytes((640, 480)), "image/jpeg")})
        before = status_kb(pid, "VmRSS")

        def send(job: tuple[int, str, bytes]) -> int:
            n, kind, data = job
            route = "/samples" if n % 2 == 0 else "/predict"
            mime = "image/png" if kind == "png" else "image/jpeg"
            return httpx.post(f"{api.url}{route}", files={"file": (f"b.{kind}", data, mime)}, timeout=300).status_code

        codes: list[int] = []
        samples = [before]
        done = threading.Event()

        def sample_rss() -> None:  # VmHWM would include the start-up peak: sample VmRSS instead
            while not done.wait(0.05):
                samples.append(status_kb(pid, "VmRSS"))

        sampler = threading.Thread(target=sample_rss)
        sampler.start()
        with ThreadPoolExecutor(8) as pool:
            for r in range(args.rounds):
                jobs = [(r + i, kind, data) for i, (kind, data) in enumerate(bombs)]
                codes += list(pool.map(send, jobs))
        done.set()
        sampler.join()
        peak, after = max(samples), status_kb(pid, "VmRSS")
    print(f"upload memory: {args.rounds} rounds of 8 concurrent requests ({sizes}; /samples and /predict)")
    print(f"  status codes {sorted(set(codes))}")
    print(f"  API RSS before {before / 1024:.0f} MB, peak {peak / 1024:.0f} MB, after {after / 1024:.0f} MB: "
          f"growth {(peak - before) / 1024:.0f} MB (bound 300 MB)")


if __name__ == "__main__":
    main()
