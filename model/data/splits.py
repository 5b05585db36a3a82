"""Train/val/test split of a new sample (≈ 80/10/10) from a keyed hash of its content.

The key is a secret of the installation (``instance_secrets.split_key``, made by migration 0003), so an
uploader cannot pick test-set membership by appending bytes to an image. A sample's split is stored when
it is added and never changes, so the test set is stable and only ever grows.
"""

import hashlib
import hmac

from db.models import Split

SPLIT_KEY = "split_key"


def split_for(sha256: str, *, key: str) -> Split:
    """Bucket HMAC-SHA256(key, sha256) into train (0-7), val (8) or test (9) by its first 8 hex digits mod 10."""
    digest = hmac.new(key.encode(), sha256.encode(), hashlib.sha256).hexdigest()
    bucket = int(digest[:8], 16) % 10
    if bucket == 9:
        return Split.TEST
    if bucket == 8:
        return Split.VAL
    return Split.TRAIN
