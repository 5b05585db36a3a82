"""Near-duplicate detection: embedding cosine similarity and perceptual-hash distance, both required.

Either signal alone fails on the shared set: resized, re-encoded and 10%-cropped copies score a cosine of
0.84–0.97 while two different grass photos reach 0.955, and a perceptual hash confuses low-detail images.
Together (``bench/near_duplicates.py`` measures the pair) they separate copies from different photos.

The index (``model.data.vector_index``: exact below a measured size, usearch's HNSW graph above it) holds the cached
embeddings of one backbone. It syncs from the database before every search (only rows newer than the last it saw),
so it is correct across restarts and across API workers: the database is the index's source of truth, the index in
memory a cache of it. The rule is applied to exact cosines: the few candidates are rescored from their stored
vectors. The same index gives a new image's novelty (``model.data.novelty``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import imagehash
import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from db import queries
from db.models import Sample
from model.data.images import decode_image
from model.data.novelty import TrainingSets, novelty_of
from model.data.storage import ObjectStore
from model.data.vector_index import VectorIndex, normalized

MAX_MATCHES = 5
SYNC_OVERLAP = 256  # embedding ids re-read below the newest seen (rows other processes committed late)
SYNC_CHUNK = 4096  # embeddings read per query (~20 MB of lite0 vectors): each round trip within the database timeout
COSINE_SLACK = 0.01  # candidates this far under the rule's cosine are rescored exactly (f16 rounds ~1e-3)
_PHASH_SIDE, _PHASH_BITS = 32, 8


def _dct_rows(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the unnormalized DCT-II matrix of size ``n`` (scipy's ``dct`` type 2)."""
    k, i = np.arange(keep)[:, None], np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_DCT_LOW = _dct_rows(_PHASH_SIDE, _PHASH_BITS)


def phash_of(image: Image.Image) -> str:
    """The 64-bit DCT perceptual hash of an image, as 16 hex digits: ``imagehash.phash``'s bits.

    The 8 × 8 low frequencies come from two small matrix products instead of scipy's full 2-D DCT, so an upload
    does not import scipy.fft (0.4 s and 28 MB, paid by the first upload of a process). Where a coefficient ties
    with the median (a blank, striped or symmetric picture: its ideal zeros or equal pairs come out of the products
    as rounding noise, which scipy's DCT does not make), the bit depends on that noise, so imagehash decides.
    """
    small = image.convert("L").resize((_PHASH_SIDE, _PHASH_SIDE), Image.Resampling.LANCZOS)
    low = _DCT_LOW @ np.asarray(small, dtype=np.float64) @ _DCT_LOW.T
    median = np.median(low)
    if np.abs(low - median).min() <= 1e-9 * max(1.0, float(np.abs(low).max())):
        return str(imagehash.phash(image))
    return str(imagehash.ImageHash(low > median))


def phash_distance(a: str, b: str) -> int:
    """Hamming distance of two perceptual hashes (0 = same, 64 = opposite)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


@dataclass(frozen=True)
class NearDuplicate:
    """An existing sample an image nearly duplicates."""

    id: int
    similarity: float

    def to_dict(self) -> dict[str, float | int]:
        return {"id": self.id, "similarity": round(self.similarity, 4)}


@dataclass(frozen=True)
class NearDuplicateRule:
    """Both must hold: cosine similarity ≥ ``min_similarity`` and pHash distance ≤ ``max_hash_distance``."""

    min_similarity: float
    max_hash_distance: int

    def holds(self, similarity: float, distance: int | None) -> bool:
        return similarity >= self.min_similarity and distance is not None and distance <= self.max_hash_distance


class EmbeddingIndex:
    """Cosine search over the samples' cached embeddings of one backbone, synced from the database."""

    def __init__(self, backbone: str) -> None:
        self.backbone = backbone
        self._sync_lock = threading.Lock()
        self._last_id = 0
        self._seen: set[int] = set()  # embedding ids in the index
        self._vectors: VectorIndex | None = None

    def __len__(self) -> int:
        return 0 if self._vectors is None else len(self._vectors)

    def sync(self, session: Session) -> None:
        """Add the embeddings cached since the last sync (every worker sees every sample; each row once). Replicas
        take ids in one order and commit in another, so each sync also reads back ``SYNC_OVERLAP`` ids below the
        newest it saw: a row committed late, below that id, is still indexed."""
        with self._sync_lock:
            after = max(0, self._last_id - SYNC_OVERLAP)
            while True:  # SYNC_CHUNK rows a query: a cold start at 100,000 is ~25 round trips, each well in time
                batch = queries.sample_embeddings_after(session, backbone=self.backbone, after_id=after,
                                                        limit=SYNC_CHUNK)
                self._add([row for row in batch if row[0] not in self._seen])
                if len(batch) < SYNC_CHUNK:
                    return
                after = batch[-1][0]

    def _add(self, rows: list[tuple[int, int, bytes]]) -> None:
        if not rows:
            return
        vectors = np.stack([np.frombuffer(vec, dtype=np.float32) for _, _, vec in rows])
        if self._vectors is None:
            self._vectors = VectorIndex(vectors.shape[1])
        self._vectors.add(np.array([sid for _, sid, _ in rows], dtype=np.int64), vectors)
        self._seen.update(eid for eid, _, _ in rows)
        self._last_id = max(self._last_id, *(eid for eid, _, _ in rows))

    def nearest(self, vector: np.ndarray, *, k: int, min_similarity: float = -1.0) -> list[tuple[int, float]]:
        """Up to ``k`` ``(sample_id, cosine)`` pairs, most similar first, at least ``min_similarity`` (cosines
        rounded to half precision once the index is approximate)."""
        vectors = self._vectors
        return [] if vectors is None else vectors.nearest(vector, k=k, min_similarity=min_similarity)


class NearDuplicateFinder:
    """Finds the existing samples an incoming image nearly duplicates (one index per backbone), and how novel the
    image is to the model that predicted it."""

    def __init__(self, rule: NearDuplicateRule) -> None:
        self.rule = rule
        self._indexes: dict[str, EmbeddingIndex] = {}
        self._lock = threading.Lock()
        self._training = TrainingSets()

    def index(self, backbone: str) -> EmbeddingIndex:
        with self._lock:
            return self._indexes.setdefault(backbone, EmbeddingIndex(backbone))

    def find(self, session: Session, *, backbone: str, embedding: np.ndarray, phash: str) -> list[NearDuplicate]:
        """Near-duplicates of an image, most similar first (at most ``MAX_MATCHES``), by exact cosines."""
        index = self.index(backbone)
        index.sync(session)
        close = index.nearest(embedding, k=4 * MAX_MATCHES,  # half-precision cosines once approximate: rescored
                              min_similarity=self.rule.min_similarity - COSINE_SLACK)
        rows = queries.samples_by_id(session, ids=[sid for sid, _ in close])
        exact = _exact_cosines(session, backbone, embedding, [rows[sid] for sid, _ in close if sid in rows])
        ranked = sorted(((sid, exact[sid]) for sid, _ in close if sid in exact), key=lambda m: (-m[1], m[0]))
        matches = [NearDuplicate(sid, sim) for sid, sim in ranked
                   if self.rule.holds(sim, _distance(phash, rows[sid].phash))]
        return matches[:MAX_MATCHES]

    def novelty(self, session: Session, *, backbone: str, embedding: np.ndarray, version: str | None) -> float | None:
        """``1 - best cosine`` of the image to the train+val images of the run that registered ``version`` (None
        when that run is unknown or trained on another backbone). Call after ``find`` (the index is synced)."""
        training = self._training.of_version(session, version, backbone=backbone)
        if not training:
            return None
        return novelty_of(self.index(backbone).nearest, embedding, training)


def _exact_cosines(session: Session, backbone: str, query: np.ndarray, samples: list[Sample]) -> dict[int, float]:
    """The exact cosine of ``query`` to each sample's stored embedding (``{sample id: cosine}``)."""
    if not samples:
        return {}
    stored = queries.cached_embeddings(session, backbone=backbone, hashes=[s.sha256 for s in samples])
    with_vector = [s for s in samples if s.sha256 in stored]
    if not with_vector:
        return {}
    matrix = normalized(np.stack([np.frombuffer(stored[s.sha256], dtype=np.float32) for s in with_vector]))
    sims = matrix @ normalized(query).reshape(-1)
    return {s.id: float(sim) for s, sim in zip(with_vector, sims, strict=True)}


def _distance(phash: str, other: str | None) -> int | None:
    """pHash distance to a sample's hash (None when the sample has none yet: ``sprout dedup`` fills it in)."""
    return phash_distance(phash, other) if other else None


def group_of(sample: Sample) -> int:
    """The near-duplicate group a sample heads or belongs to (its own id when it has none yet)."""
    return sample.duplicate_group if sample.duplicate_group is not None else sample.id


def near_duplicate_notes(session: Session, samples: list[Sample]) -> dict[int, list[dict[str, object]]]:
    """For a reviewer: each sample's near-duplicates with their label and status now (``{id: [...]}``)."""
    linked = {int(link["id"]) for s in samples for link in s.near_duplicates or ()}
    rows = queries.samples_by_id(session, ids=sorted(linked))
    return {s.id: [{**link, "label": rows[int(link["id"])].label, "status": rows[int(link["id"])].status}
                   for link in s.near_duplicates or () if int(link["id"]) in rows]
            for s in samples}


@dataclass
class DedupReport:
    """Near-duplicate groups among existing samples, and the groups whose members straddle splits (leaks)."""

    backbone: str
    checked: int = 0
    without_embedding: int = 0
    hashed: int = 0  # pHashes computed (and, unless report-only, stored) for samples that had none
    linked: int = 0  # samples given their group (unless report-only); splits never change
    groups: list[list[dict[str, object]]] = field(default_factory=list)

    @property
    def leaks(self) -> list[list[dict[str, object]]]:
        return [g for g in self.groups if len({m["split"] for m in g}) > 1]

    def to_dict(self) -> dict[str, object]:
        return {"backbone": self.backbone, "checked": self.checked, "without_embedding": self.without_embedding,
                "hashed": self.hashed, "linked": self.linked, "groups": self.groups, "leaks": self.leaks}


def dedup_report(session: Session, store: ObjectStore, rule: NearDuplicateRule, *, backbone: str,
                 report_only: bool = True, chunk: int = 1024) -> DedupReport:
    """Group existing samples by the near-duplicate rule (cached ``backbone`` embeddings + pHash).

    Without ``report_only`` it stores the pHashes it had to compute and links each ungrouped member to its
    group; it never moves a sample to another split (a leak is reported for a person to resolve).
    """
    from scipy.cluster.hierarchy import DisjointSet

    samples = queries.all_samples(session)
    result = DedupReport(backbone=backbone, checked=len(samples))
    cached = queries.cached_embeddings(session, backbone=backbone, hashes=[s.sha256 for s in samples])
    rows = [s for s in samples if s.sha256 in cached]
    result.without_embedding = len(samples) - len(rows)
    for sample in rows:
        if sample.phash is None:
            sample.phash = phash_of(decode_image(store.get(sample.object_key), min_side=256))
            result.hashed += 1
    if len(rows) < 2:
        _finish(session, report_only)
        return result
    x = normalized(np.stack([np.frombuffer(cached[s.sha256], dtype=np.float32) for s in rows]))
    sets = DisjointSet(range(len(rows)))
    for start in range(0, len(rows), chunk):
        sims = x[start : start + chunk] @ x.T
        for i, j in zip(*np.nonzero(sims >= rule.min_similarity), strict=True):
            a, b = start + int(i), int(j)
            if a < b and rule.holds(float(sims[i, j]), phash_distance(rows[a].phash or "", rows[b].phash or "")):
                sets.merge(a, b)
    for members in sorted((sorted(g) for g in sets.subsets() if len(g) > 1), key=lambda g: rows[g[0]].id):
        head = min(rows[m].duplicate_group or rows[m].id for m in members)
        result.groups.append([{"id": rows[m].id, "split": rows[m].split.value, "label": rows[m].label,
                               "status": rows[m].status.value} for m in members])
        for m in members:
            if rows[m].duplicate_group is None:
                rows[m].duplicate_group = head
                result.linked += 1
    _finish(session, report_only)
    return result


def _finish(session: Session, report_only: bool) -> None:
    if report_only:
        session.rollback()
    else:
        session.commit()
