"""Deterministic train/val/test split from a sample's content hash (≈ 80/10/10).

The split depends only on the hash, so the test set is stable and only ever grows.
"""

from db.models import Split


def split_for(sha256: str) -> Split:
    """Bucket a hash into train (0-7), val (8) or test (9) by its first 8 hex digits mod 10."""
    bucket = int(sha256[:8], 16) % 10
    if bucket == 9:
        return Split.TEST
    if bucket == 8:
        return Split.VAL
    return Split.TRAIN
