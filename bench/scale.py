"""Benchmark: how Sprout's per-request costs, retrain and storage grow with the number of samples (issue 26).

For each N it builds a fresh home through Sprout's own paths — ``sprout import`` of a folder-per-label tree of
distinct generated JPEGs (90 % of N, approved), ``sprout train --force`` (the champion), then 10 % of N uploaded
to the real API (``POST /samples``: pending, each with the champion's prediction and embedding) — and measures,
against that API as a reviewer: uploads, ``GET /admin/samples`` pages, every review-queue order, ``/admin/stats``,
``/models``, ``/admin/drift`` (after 60 predictions), then ``sprout train`` after 10 approvals through the review
route (wall time and the child's peak RSS), the database's growth and the object store's bytes per sample (MLflow's
store, the home's SQLite, is not counted). One shortcut: the approved samples' embeddings are written into the
embedding cache (table ``embeddings``, one row per image and backbone) as synthetic vectors that carry label
signal, instead of running the backbone over them (its cost is linear and measured by bench/retrain.py); every
other step is the product's code. It prints a table per N, then all of them with the ratio largest / smallest N.

    python bench/scale.py [--sizes 1000,10000,100000] [--labels 4] [--real] [--repeats 20] [--json FILE]

``--real`` runs on PostgreSQL and SeaweedFS (throwaway servers from tests/servers: a database and a key prefix per
N) instead of the embedded SQLite and local object store; MLflow stays the home's SQLite store. Everything listens
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import colorsys
import contextlib
import hashlib
import io
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: bench shares tests/
from model.core.settings import Settings  # noqa: E402
from tests.utils.readiness import http_ok, wait_until_ready  # noqa: E402

SPROUT = str(Path(sys.executable).with_name("sprout"))
REVIEWER, ADMIN, PASSWORD = "scale-reviewer", "scale-admin", "scale-bench-password-1"
ORDERS = ("uncertainty", "novelty", "diverse", "suspect", "oldest", "newest")
PENDING_SHARE = 0.10
NEW_APPROVALS = 10
DRIFT_PREDICTIONS = 60
TIMED_UPLOADS = 100  # the last uploads, timed once the home is (nearly) full
IMAGE_SIDE = 128
console = Console(width=160)


@dataclass
class Result:
    """One home's figures: latency rows (ms), others in their own unit (``units``)."""

    n: int
    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: float, unit: str) -> None:
        self.values[name], self.units[name] = value, unit


# ---- images and labels -------------------------------------------------------------------------------------


def label_names(count: int) -> list[str]:
    """The labels of the generated data (data, not code: ``texture-0``, ``texture-1``, ...)."""
    return [f"texture-{i}" for i in range(count)]


def texture_jpeg(rng: np.random.Generator, label_index: int, n_labels: int) -> bytes:
    """A distinct JPEG: a random low-frequency field (random perceptual hash) tinted by the label's hue, plus
    fine noise."""
    coarse = Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).resize(
        (IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC)
    hue = np.array(colorsys.hsv_to_rgb(label_index / n_labels, 0.8, 0.9)) * 255
    pixels = 0.55 * np.asarray(coarse, dtype=np.float32) + 0.45 * hue + rng.normal(0, 12, (IMAGE_SIDE, IMAGE_SIDE, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_tree(root: Path, count: int, labels: list[str], seed: int) -> dict[str, str]:
    """``root/<label>/<i>.jpg`` for ``count`` images, labels round-robin, on every core; ``{sha256: label}``."""
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, count, (os.cpu_count() or 1) * 4 + 1).astype(int)
    by_sha: dict[str, str] = {}
    with ProcessPoolExecutor() as pool:
        jobs = [pool.submit(_write_images, root, labels, [seed, part], int(a), int(b))
                for part, (a, b) in enumerate(itertools.pairwise(cuts))]
        for job in jobs:
            by_sha.update(job.result())
    return by_sha


def _write_images(root: Path, labels: list[str], seed: list[int], start: int, stop: int) -> dict[str, str]:
    rng, by_sha = np.random.default_rng(seed), {}
    for i in range(start, stop):
        k = i % len(labels)
        data = texture_jpeg(rng, k, len(labels))
        (root / labels[k] / f"{i:06d}.jpg").write_bytes(data)
        by_sha[hashlib.sha256(data).hexdigest()] = labels[k]
    return by_sha


# ---- the stack (embedded or real) --------------------------------------------------------------------------


class Stack:
    """Where a home's state lives: its settings (``SPROUT_*``), and how many bytes its database holds."""

    name = "embedded (SQLite, local object store)"

    def env(self, n: int, home: Path) -> dict[str, str]:
        return {"SPROUT_HOME": str(home)}

    def database_bytes(self, home: Path) -> int:
        return sum(p.stat().st_size for p in home.glob("sprout.db*"))


@dataclass
class RealStack(Stack):
    """PostgreSQL and SeaweedFS: a database and an object-key prefix per N."""

    pg_admin_url: str
    s3: Any
    name = "real (PostgreSQL, SeaweedFS)"
    urls: dict[int, str] = field(default_factory=dict)

    def env(self, n: int, home: Path) -> dict[str, str]:
        from tests.servers import create_database

        if n not in self.urls:
            self.urls[n] = create_database(self.pg_admin_url, f"scale_{n}")
        return {"SPROUT_HOME": str(home), "SPROUT_DATABASE_URL": self.urls[n], "SPROUT_S3_ENDPOINT": self.s3.endpoint,
                "SPROUT_S3_ACCESS_KEY": self.s3.access_key, "SPROUT_S3_SECRET_KEY": self.s3.secret_key,
                "SPROUT_S3_BUCKET": "sprout", "SPROUT_S3_PREFIX": f"scale-{n}"}

    def database_bytes(self, home: Path) -> int:
        from sqlalchemy import create_engine, text

        engine = create_engine(os.environ["SPROUT_DATABASE_URL"])
        with engine.connect() as conn:
            size = int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
        engine.dispose()
        return size


@contextlib.contextmanager
def open_stack(real: bool) -> Iterator[Stack]:
    """The embedded stack, or throwaway PostgreSQL and SeaweedFS servers for the run."""
    if not real:
        yield Stack()
        return
    from tests.servers import postgres_server, seaweedfs_server

    with postgres_server() as pg_url, seaweedfs_server() as s3:
        yield RealStack(pg_url, s3)


def object_store_bytes() -> int:
    """Bytes of every object in the home's store (its key prefix on S3), as the store lists them."""
    from model.core.settings import Settings

    settings = Settings()
    if settings.s3_endpoint is None:
        return sum(p.stat().st_size for p in settings.objects_dir.rglob("*") if p.is_file())
    from model.data.importer import s3_client

    pages = s3_client(settings).get_paginator("list_objects_v2").paginate(
        Bucket=settings.s3_bucket, Prefix=settings.s3_prefix)
    return sum(obj["Size"] for page in pages for obj in page.get("Contents", []))


# ---- the product's paths -----------------------------------------------------------------------------------


def sprout(*args: str, stdin: str | None = None) -> dict[str, Any]:
    """``sprout --json ARGS`` in the current environment; its JSON object (exit 3, a refused gate, is an answer)."""
    proc = subprocess.run([SPROUT, "--json", *args], input=stdin, capture_output=True, text=True)
    if proc.returncode not in (0, 3):
        sys.exit(f"sprout {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def timed_train(log: Path) -> tuple[float, float, dict[str, Any]]:
    """``sprout --json train`` as a child process: wall seconds, its peak RSS (MB) and its JSON. A small Python
    process starts it and reads its ``ru_maxrss``: a child forked straight from this (large) process would
    inherit this one's high-water mark."""
    rss_file = log.with_suffix(".maxrss")
    with log.open("w") as err, tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", RSS_HELPER, str(rss_file), SPROUT, "--json", "train"],
                               stdout=out, stderr=err)
        wall = time.perf_counter() - start
        out.seek(0)
        lines = out.read().strip().splitlines()
    if code not in (0, 3) or not lines:
        sys.exit(f"sprout train failed ({code}): see {log}")
    return wall, int(rss_file.read_text()) / 1024, json.loads(lines[-1])


RSS_HELPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
              "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
              "sys.exit(code)")


def export_backbone_graph() -> None:
    """Export each candidate backbone's ONNX graph into the shared graphs folder once, before any home is timed."""
    code = ("from model.core.settings import Settings; from model.learning.backbones import load_backbone; "
            "from model.learning.onnx_export import cached_backbone_path; s = Settings(); "
            "[cached_backbone_path(load_backbone(b, s), s.backbone_graphs_dir) for b in s.candidate_backbone_names]")
    subprocess.run([sys.executable, "-c", code], check=True)


def cache_embeddings(by_sha: dict[str, str], labels: list[str], signal: float, seed: int) -> None:
    """The shortcut: one synthetic vector per approved image and candidate backbone in the embedding cache, its
    label's centroid plus noise (each backbone after the first a weaker signal, so the candidates differ), so
    training, novelty, diversity and drift have real work to do."""
    from sqlalchemy import insert

    from db.models import Embedding
    from model.core.settings import Settings
    from model.learning.backbones import load_backbone
    from model.runtime.services import Services

    settings = Settings()
    rng = np.random.default_rng(seed)
    svc = Services.from_settings(settings)
    items = list(by_sha.items())
    for rank, name in enumerate(settings.candidate_backbone_names):
        backbone = load_backbone(name, settings)
        centroids = {label: rng.normal(0, signal / (1 + rank), backbone.dim) for label in labels}
        with svc.session() as session:
            for start in range(0, len(items), 2000):
                rows = []
                for sha, label in items[start : start + 2000]:
                    vec = np.maximum(0.5 + centroids[label] + rng.normal(0, 0.5, backbone.dim), 0).astype(np.float32)
                    rows.append({"sha256": sha, "backbone": backbone.name, "dim": vec.size, "vector": vec.tobytes()})
                session.execute(insert(Embedding), rows)
                session.commit()
    svc.close()


@contextlib.contextmanager
def running_api(home: Path) -> Iterator[str]:
    """``uvicorn api.main:app`` on 127.0.0.1 for the current environment's home, serving the champion."""
    port = 19000 + os.getpid() % 1000
    log = (home.parent / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("uvicorn")), "api.main:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(http_ok(f"http://127.0.0.1:{port}/readyz", timeout=30), what="the API", timeout=300,
                         proc=server, interval=0.5, log=Path(log.name))
        yield f"http://127.0.0.1:{port}"
    except BaseException:  # a request failed (sys.exit) or the run was stopped: what the API said
        log.flush()
        console.print(f"the API's log ({log.name}), last lines:\n{Path(log.name).read_text()[-4000:]}", markup=False)
        raise
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


class Client:
    """An HTTP client of the API that logs in as the bench's reviewer (or admin) and times requests."""

    def __init__(self, url: str) -> None:
        self.url, self.http = url, httpx.Client(base_url=url, timeout=600)

    def login(self, user: str = REVIEWER) -> None:
        resp = self.http.post("/auth/token", data={"username": user, "password": PASSWORD})
        resp.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def timed(self, method: str, path: str, **kwargs: Any) -> tuple[float, httpx.Response]:
        start = time.perf_counter()
        resp = self.http.request(method, path, **kwargs)
        elapsed = 1000 * (time.perf_counter() - start)
        if resp.status_code not in (200, 201):
            sys.exit(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return elapsed, resp

    def p50(self, path: str, repeats: int, **params: Any) -> float:
        self.timed("GET", path, params=params)  # warm-up: caches and the first load of a reference
        return statistics.median(self.timed("GET", path, params=params)[0] for _ in range(repeats))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


# ---- one home ----------------------------------------------------------------------------------------------


def upload_pending(client: Client, count: int, labels: list[str], seed: int, result: Result) -> dict[int, str]:
    """``count`` pending uploads (half with the true label suggested), two at a time but for the last ones, sent
    one by one and timed. ``{id: true label}``."""
    bulk = max(count - TIMED_UPLOADS, 0)
    truth: dict[int, str] = {}
    with ThreadPoolExecutor(2) as pool:
        for sent, _ in pool.map(lambda half: _upload(Client(client.url), range(half, bulk, 2), labels, [seed, half]),
                                (0, 1)):
            truth.update(sent)
    sent, times = _upload(client, range(bulk, count), labels, [seed, 2])
    truth.update(sent)
    result.put("POST /samples (upload) p50", statistics.median(times), "ms")
    result.put("POST /samples (upload) p99", percentile(times, 99), "ms")
    return truth


def _upload(client: Client, indexes: range, labels: list[str], seed: list[int]) -> tuple[dict[int, str], list[float]]:
    rng, truth, times = np.random.default_rng(seed), {}, []
    for i in indexes:
        k = i % len(labels)
        form = {"label": labels[k]} if i % 2 == 0 else {}
        ms, resp = client.timed("POST", "/samples", data=form,
                                files={"file": (f"u{i}.jpg", texture_jpeg(rng, k, len(labels)), "image/jpeg")})
        truth[resp.json()["id"]] = labels[k]
        times.append(ms)
    return truth, times


APPROVED_PAGE = {"status": "approved", "order": "newest", "limit": 50}


def measure_reads(client: Client, n_approved: int, repeats: int, result: Result) -> None:
    """``GET /admin/samples`` pages across the approved list (by offset, and the page after each by its cursor),
    every queue order, stats, models and drift."""
    client.login()
    offsets = [int(x) for x in np.linspace(0, max(n_approved - 50, 0), repeats)]
    pages, cursors = [], []
    for o in offsets:
        ms, resp = client.timed("GET", "/admin/samples", params={**APPROVED_PAGE, "offset": o})
        pages.append(ms)
        cursors.append(resp.json()["next_cursor"])
    result.put("GET /admin/samples page p50", statistics.median(pages), "ms")
    result.put("GET /admin/samples page p99", percentile(pages, 99), "ms")
    # the same depths reached as a client pages on: each page after the last one's next_cursor (keyset)
    keyset = [client.timed("GET", "/admin/samples", params={**APPROVED_PAGE, "cursor": c})[0] for c in cursors if c]
    result.put("GET /admin/samples next page (cursor) p50", statistics.median(keyset), "ms")
    result.put("GET /admin/samples next page (cursor) p99", percentile(keyset, 99), "ms")
    # and inside one long tie: every imported sample's novelty is -1 (unscored)
    tie = {**APPROVED_PAGE, "order": "novelty"}
    cursors = [client.timed("GET", "/admin/samples", params={**tie, "offset": o})[1].json()["next_cursor"]
               for o in offsets]
    keyset = [client.timed("GET", "/admin/samples", params={**tie, "cursor": c})[0] for c in cursors if c]
    result.put("GET /admin/samples novelty next page (cursor) p50", statistics.median(keyset), "ms")
    for order in ORDERS:
        result.put(f"queue {order} p50", client.p50("/admin/samples", repeats, status="pending", order=order,
                                                    limit=20), "ms")
    first, _ = client.timed("GET", "/admin/label-issues", params={"limit": 10})  # ranks the last run, once
    result.put("GET /admin/label-issues first (ranks the run)", first, "ms")
    result.put("GET /admin/label-issues p50", client.p50("/admin/label-issues", repeats, limit=10), "ms")
    result.put("queue suspect (approved) p50", client.p50("/admin/samples", repeats, status="approved",
                                                           order="suspect", limit=20), "ms")
    result.put("GET /admin/stats p50", client.p50("/admin/stats", repeats), "ms")
    result.put("GET /models p50", client.p50("/models", repeats), "ms")
    result.put("GET /admin/drift p50", client.p50("/admin/drift", repeats), "ms")


def predict_for_drift(client: Client, labels: list[str], seed: int, result: Result) -> None:
    """Fill the drift window with predictions of new images (not stored) and wait for its writer."""
    rng = np.random.default_rng(seed)
    times = [client.timed("POST", "/predict", files={"file": ("p.jpg", texture_jpeg(rng, i % len(labels),
                                                                                     len(labels)), "image/jpeg")})[0]
             for i in range(DRIFT_PREDICTIONS)]
    result.put("POST /predict p50", statistics.median(times), "ms")
    time.sleep(5)  # SPROUT_DRIFT_FLUSH_SECONDS is 2


def approve(client: Client, truth: dict[int, str], count: int) -> None:
    """Approve ``count`` pending samples through the review route, with their true label."""
    client.login()
    for sample_id, label in list(truth.items())[:count]:
        client.timed("POST", f"/admin/samples/{sample_id}/review", json={"action": "approve", "label": label})


@dataclass(frozen=True)
class Plan:
    """What the run measures: sizes, labels, repeats, the synthetic embeddings' signal and the work folder."""

    sizes: list[int]
    labels: list[str]
    backbones: str
    repeats: int
    signal: float
    work: Path
    graphs: Path


def bench_home(plan: Plan, stack: Stack, result: Result) -> None:
    """Build a home of ``result.n`` samples through Sprout's paths and measure it into ``result``."""
    n, root = result.n, plan.work / f"n{result.n}"
    home, pending = root / "home", pending_of(n)
    environment(stack.env(n, home), plan)
    export_backbone_graph()
    start = time.perf_counter()
    with stage(result, "build: images generated"):
        by_sha = write_tree(root / "tree", n - pending, plan.labels, seed=n)
    sprout("db", "upgrade")
    sprout("users", "add", REVIEWER, stdin=f"{PASSWORD}\n")
    sprout("users", "add", ADMIN, "--admin", stdin=f"{PASSWORD}\n")
    empty_database = stack.database_bytes(home)
    with stage(result, "build: sprout import"):
        imported = sprout("import", str(root / "tree"))
    if imported.get("added") != n - pending:
        sys.exit(f"import added {imported.get('added')} of {n - pending}: {str(imported)[:500]}")
    shutil.rmtree(root / "tree")
    with stage(result, "build: embedding cache (synthetic)"):
        cache_embeddings(by_sha, plan.labels, plan.signal, seed=n)
    with stage(result, "build: sprout train --force"):
        first = sprout("train", "--force")
    if not first.get("promoted"):
        sys.exit(f"the first model was not promoted: {str(first)[:1000]}")
    with running_api(home) as url:
        client = Client(url)
        with stage(result, "build: uploads (pending)"):
            truth = upload_pending(client, pending, plan.labels, seed=n + 1, result=result)
        result.put("build: total", time.perf_counter() - start, "s")
        predict_for_drift(client, plan.labels, seed=n + 2, result=result)
        measure_reads(client, n - pending, plan.repeats, result)
        approve(client, truth, NEW_APPROVALS)
        wall, rss, outcome = timed_train(root / "train.log")
    if outcome.get("skipped"):
        sys.exit(f"N={n}: sprout train after {NEW_APPROVALS} approvals was skipped: {outcome.get('reason')}")
    result.put(f"sprout train after {NEW_APPROVALS} approvals", wall, "s")
    result.put("sprout train peak RSS", rss, "MB")
    result.put("database per sample", (stack.database_bytes(home) - empty_database) / n / 1024, "KiB")
    result.put("object store per sample", object_store_bytes() / n / 1024, "KiB")
    console.print(f"N={n}: second run {outcome.get('run_id')} gate "
                  f"{'passed' if (outcome.get('gate') or {}).get('passed') else 'refused'}, "
                  f"{outcome.get('n_embedded')} embedded")


def pending_of(n: int) -> int:
    """Samples uploaded as pending: 10 % of N, and at least the approvals the retrain waits for."""
    return max(int(round(n * PENDING_SHARE)), NEW_APPROVALS)


def environment(extra: dict[str, str], plan: Plan) -> None:
    """This home's settings, for this process and the children: no other ``SPROUT_*`` setting leaks in."""
    for key in [k for k in os.environ if k.startswith("SPROUT_")]:
        del os.environ[key]
    os.environ.update({
        "SPROUT_BACKBONE_GRAPHS": str(plan.graphs), "SPROUT_CANDIDATE_BACKBONES": plan.backbones,
        "SPROUT_UPLOADS_PER_MINUTE": "1000000", "SPROUT_PREDICTIONS_PER_MINUTE": "0",
        "SPROUT_MAX_PENDING_SAMPLES": "1000000", **extra})


@contextlib.contextmanager
def stage(result: Result, name: str) -> Iterator[None]:
    """Time a build step (seconds) and say it is done."""
    start = time.perf_counter()
    yield
    result.put(name, time.perf_counter() - start, "s")
    console.print(f"  N={result.n}: {name} {result.values[name]:.1f} s", highlight=False)


# ---- output ------------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def table_of(results: list[Result], title: str) -> Table:
    """One row per figure, a column per N, and the ratio of the largest N to the smallest when there are two."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("unit")
    for r in results:
        table.add_column(f"N={r.n:,}", justify="right")
    ratio = len(results) > 1
    if ratio:
        table.add_column(f"ratio {results[-1].n}/{results[0].n}", justify="right")
    for name, unit in results[0].units.items():
        row = [name, unit, *(fmt(r.values[name]) for r in results)]
        if ratio:
            low, high = results[0].values[name], results[-1].values[name]
            row.append(f"{high / low:.2f}×" if low > 0 else "-")
        table.add_row(*row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated sample counts")
    parser.add_argument("--labels", type=int, default=4, help="number of labels (generated names)")
    parser.add_argument("--repeats", type=int, default=20, help="timed requests per figure")
    parser.add_argument("--backbones", default=Settings.model_fields["candidate_backbones"].default,
                        help="candidate backbones of every training (comma-separated; default: the product's)")
    parser.add_argument("--signal", type=float, default=0.08, help="label signal of the synthetic embeddings")
    parser.add_argument("--real", action="store_true", help="PostgreSQL and SeaweedFS instead of the embedded stack")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the homes (printed) instead of deleting them")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="sprout-scale-"))
    graphs = Path(os.environ.get("SPROUT_BACKBONE_GRAPHS") or work / "graphs")
    plan = Plan(sizes, label_names(args.labels), args.backbones, args.repeats, args.signal, work, graphs)
    results: list[Result] = []
    stop_on_sigterm()
    try:
        with open_stack(args.real) as stack:
            console.print(f"Sprout at scale on the {stack.name} stack: N = {sizes}, {args.labels} labels, "
                          f"{int(PENDING_SHARE * 100)} % pending, work folder {work}")
            for n in sizes:
                results.append(Result(n))
                run_one(plan, stack, results, args.json)
    except KeyboardInterrupt:
        console.print(f"interrupted: N={results[-1].n if results else '-'} has only the figures above")
        sys.exit(130)
    finally:
        if args.keep:
            console.print(f"homes kept under {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run_one(plan: Plan, stack: Stack, results: list[Result], json_path: Path | None) -> None:
    """Build and measure the last home of ``results``, print its table (what it has, when interrupted) and the
    ratios so far."""
    result = results[-1]
    try:
        bench_home(plan, stack, result)
    finally:
        console.print(f"N = {result.n:,} on the {stack.name} stack: {result.n - pending_of(result.n):,} approved, "
                      f"{pending_of(result.n):,} pending, {len(plan.labels)} labels; load average at the end "
                      f"{os.getloadavg()[1]:.1f} (5 min) on {os.cpu_count()} cores")
        if result.values:
            console.print(table_of([result], f"N = {result.n:,}"))
        write_json(json_path, stack.name, results)
    if len(results) > 1:
        console.print(table_of(results, f"Sprout at scale, {stack.name}: ratios {result.n}/{results[0].n}"))


def stop_on_sigterm() -> None:
    """``timeout`` (SIGTERM) ends the run like Ctrl-C: the servers stop and the figures so far are printed."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def write_json(path: Path | None, stack: str, results: list[Result]) -> None:
    if path is not None:
        path.write_text(json.dumps({"stack": stack, "results": [
            {"n": r.n, "values": r.values, "units": r.units} for r in results]}, indent=2))


if __name__ == "__main__":
    main()
