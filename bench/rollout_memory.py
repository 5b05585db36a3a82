"""Memory of two loaded models: the API's resident memory (VmRSS) serving the champion alone, then the champion
with a challenger in shadow (same backbone: efficientnet_lite0 beside lite0; and lite0 beside lite2), each a fresh
API process after the same warm-up (every image predicted, and in shadow also scored by the challenger).

    python bench/rollout_memory.py [--per-label 20] [--requests 60] [--no-lite2]

Builds an embedded home of the 6-label scenes set (``--per-label`` photos each): version 1 (lite0) the champion,
version 2 (lite0, trained again) and version 3 (lite2) registered; a rollout is started by an admin for each
challenger in turn (``sprout rollout start``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench shares tests/utils
from model.data.importer import find_labeled_files  # noqa: E402
from tests.utils.datasets import write_tree  # noqa: E402
from tests.utils.live_api import ADMIN, add_reviewer, serve, sprout  # noqa: E402
from tests.utils.paths import SCENES  # noqa: E402
from tests.utils.process_memory import api_pid, status_kb  # noqa: E402

ENV = {"SPROUT_MODEL_POLL_SECONDS": "0.5", "SPROUT_PREDICTIONS_PER_MINUTE": "100000", "SPROUT_SHADOW_SHARE": "1.0"}


def build_home(root: Path, per_label: int, lite2: bool) -> tuple[Path, list[bytes], dict[str, str]]:
    """The home (version 1 the champion), photos no version trained on, and the challengers registered: their
    version by backbone."""
    by_label: dict[str, list[Path]] = {}
    for label, path in find_labeled_files(SCENES):
        by_label.setdefault(label, []).append(path)
    home = root / "home"
    add_reviewer(home)
    sprout(home, "import", str(write_tree([(label, p) for label, paths in by_label.items()
                                            for p in paths[:per_label]], root / "tree")))
    assert sprout(home, "train", "--force", "--backbone", "efficientnet_lite0")["version"] == "1"
    shadow = {"SPROUT_ROLLOUT": "shadow"}
    registered = {}
    for backbone in ["efficientnet_lite0"] + (["efficientnet_lite2"] if lite2 else []):
        trained = sprout(home, "train", "--force", "--backbone", backbone, env=shadow)
        if not trained["gate"]["passed"]:  # refused candidates are not registered: that case is left out
            print(f"{backbone}: the gate refused the candidate ({trained['gate'].get('reason')}); left out")
            continue
        registered[backbone] = str(trained["version"])
        sprout(home, "rollout", "abort", "--by", ADMIN)  # registered; the rollouts below are started one by one
    unseen = [p.read_bytes() for paths in by_label.values() for p in paths[per_label:]]
    return home, unseen, registered


def measure(home: Path, images: list[bytes], requests: int, challenger: str | None) -> tuple[float, float]:
    """(VmRSS MB after start-up and one prediction, VmRSS MB after ``requests`` predictions) of a fresh API."""
    with serve(home, env=ENV) as api:
        pid = api_pid(int(api.url.rsplit(":", 1)[1]))
        deadline = time.monotonic() + 120
        while api.get("/rollouts")["challenger"] != challenger:  # the challenger is loaded (or none is expected)
            assert time.monotonic() < deadline, "the challenger was not loaded"
            time.sleep(0.5)
        with httpx.Client(timeout=60) as client:
            def predict(data: bytes) -> None:
                resp = client.post(f"{api.url}/predict", files={"file": ("x.jpg", data, "image/jpeg")})
                assert resp.status_code == 200, resp.text

            predict(images[0])
            time.sleep(2)  # the shadow scorer too
            started = status_kb(pid, "VmRSS")
            for i in range(requests):
                predict(images[i % len(images)])
        time.sleep(3)  # the last shadowed images scored and written
        return started / 1024, status_kb(pid, "VmRSS") / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-label", type=int, default=20)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--no-lite2", action="store_true", help="skip the lite0 + lite2 case")
    args = parser.parse_args()
    os.environ.setdefault("SPROUT_BACKBONE_GRAPHS", tempfile.mkdtemp(prefix="sprout-graphs-"))  # shared by homes
    home, images, registered = build_home(Path(tempfile.mkdtemp(prefix="sprout-rollout-memory-")), args.per_label,
                                          not args.no_lite2)
    cases: list[tuple[str, str | None]] = [("champion alone (lite0)", None)]
    cases += [(f"champion lite0 + challenger {backbone.removeprefix('efficientnet_')}, shadow", version)
              for backbone, version in registered.items()]
    rows = []
    for name, challenger in cases:
        if challenger is not None:
            assert sprout(home, "rollout", "start", challenger, "--by", ADMIN, "--mode", "shadow")["open"]
        rows.append((name, *measure(home, images, args.requests, challenger)))
        if challenger is not None:
            sprout(home, "rollout", "abort", "--by", ADMIN)
    base = rows[0][2]
    print(f"API resident memory (VmRSS), a fresh process per case, after {args.requests} /predict requests "
          f"(shadow share 1.0: each also scored by the challenger)")
    print(f"{'case':<46} {'start MB':>9} {'warm MB':>9} {'vs alone':>9}")
    for name, started, warm in rows:
        print(f"{name:<46} {started:>9.0f} {warm:>9.0f} {warm - base:>+9.0f}")


if __name__ == "__main__":
    main()
