"""Backbone embeddings, cached per (sha256, backbone) in the database.

A retrain embeds only the samples it has not seen with that backbone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from db import queries
from db.models import Embedding
from model.core.progress import step
from model.data.images import MAX_PIXELS, load_and_preprocess
from model.data.storage import ObjectStore
from model.learning.backbones import LoadedBackbone
from model.serving.contract import FEATURES_NAME, INPUT_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageRef:
    """What embedding needs of a sample: its hash and where its bytes are."""

    sha256: str
    object_key: str


def load_cached(session: Session, backbone: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """Cached vectors for ``hashes`` (missing ones are absent from the result)."""
    raw = queries.cached_embeddings(session, backbone=backbone, hashes=hashes)
    return {sha: np.frombuffer(blob, dtype=np.float32) for sha, blob in raw.items()}


def load_matrix(session: Session, backbone: str, hashes: Sequence[str], *,
                dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The cached vectors of ``hashes`` as one float32 matrix in their order, filled row by row as the database
    streams them (``queries.embedding_vectors``: no dict of blobs, no second copy to stack), and a mask of the rows
    found (missing rows are zero). ``dim``: the width when nothing is cached (else 0)."""
    rows: dict[str, list[int]] = {}
    for i, sha in enumerate(hashes):
        rows.setdefault(sha, []).append(i)
    matrix: np.ndarray | None = None
    found = np.zeros(len(hashes), dtype=bool)
    for sha, blob in queries.embedding_vectors(session, backbone=backbone, hashes=list(rows)):
        vector = np.frombuffer(blob, dtype=np.float32)
        if matrix is None:
            matrix = np.zeros((len(hashes), vector.size), dtype=np.float32)
        matrix[rows[sha]] = vector
        found[rows[sha]] = True
    if matrix is None:
        matrix = np.zeros((len(hashes), dim or 0), dtype=np.float32)
    return matrix, found


def embed_batch(backbone: LoadedBackbone, batch: np.ndarray) -> np.ndarray:
    """Run the frozen backbone on a preprocessed NCHW batch (no gradients)."""
    import torch

    with torch.no_grad():
        out = backbone.module(torch.from_numpy(batch).to(backbone.device))
    embeddings: np.ndarray = out.float().cpu().numpy()
    return embeddings


def batch_embedder(backbone: LoadedBackbone, graphs_dir: Path | None) -> Callable[[np.ndarray], np.ndarray]:
    """How to embed a batch: ONNX Runtime on the backbone's exported graph on a CPU (about 4 times faster than
    torch here, equal to 1e-5), torch on a GPU or without a cache directory."""
    if backbone.device != "cpu" or graphs_dir is None:
        return lambda batch: embed_batch(backbone, batch)
    import onnxruntime as ort

    from model.learning.onnx_export import cached_backbone_path

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(cached_backbone_path(backbone, graphs_dir)), sess_options=options,
                                   providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        (features,) = session.run([FEATURES_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(features, dtype=np.float32)

    return run


def embed_images(
    session: Session,
    store: ObjectStore,
    backbone: LoadedBackbone,
    refs: Sequence[ImageRef],
    *,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    graphs_dir: Path | None = None,
) -> tuple[np.ndarray, int]:
    """Embeddings for ``refs`` in order, computing and caching only the missing ones (with ``graphs_dir``, on a
    CPU, through ONNX Runtime: ``batch_embedder``).

    Returns ``(matrix, n_computed)``.
    """
    x, found = load_matrix(session, backbone.name, [r.sha256 for r in refs])
    missing = list({r.sha256: r for r, hit in zip(refs, found, strict=True) if not hit}.values())
    rows: dict[str, list[int]] = {}  # where each missing image's vector goes
    if missing:
        log.info("embedding %d new images with %s (%d cached)", len(missing), backbone.name, int(found.sum()))
        if x.shape[1] == 0:
            x = np.zeros((len(refs), backbone.dim), dtype=np.float32)
        for i, ref in enumerate(refs):
            rows.setdefault(ref.sha256, []).append(i)
    advance = progress or step(f"embedding with {backbone.name}", len(missing))

    def prepare(ref: ImageRef) -> np.ndarray:
        return load_and_preprocess(store.get(ref.object_key), backbone.spec, max_pixels=MAX_PIXELS)  # stored: trusted

    embed = batch_embedder(backbone, graphs_dir) if missing else None
    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            assert embed is not None
            vectors = embed(np.stack(list(pool.map(prepare, chunk))))
            for ref, vec in zip(chunk, vectors, strict=True):
                vec = np.ascontiguousarray(vec, dtype=np.float32)
                x[rows[ref.sha256]] = vec
                session.add(Embedding(sha256=ref.sha256, backbone=backbone.name, dim=vec.size,
                                      vector=vec.tobytes()))
            session.commit()
            advance(len(chunk))
    if not refs:
        return np.zeros((0, backbone.dim), dtype=np.float32), 0
    return x, len(missing)
