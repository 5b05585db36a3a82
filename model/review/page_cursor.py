"""Opaque cursors of the review queue's pages: what ``next_cursor`` says and ``cursor`` reads back.

A cursor names the order and status it belongs to and where the next page starts: the last row's sort key for the
orders the database sorts (a keyset page: the same cost at any depth), or a position for the orders ranked in
Python (``diverse``, approved ``suspect``; both rank a bounded pool). It is base64url JSON: not a secret, only not a
contract — clients pass it back as it came.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

from db.sample_pages import SortKey, SqlOrder, key_length
from model.core.errors import InvalidCursorError

INT64 = 2**63


@dataclass(frozen=True)
class PageCursor:
    """Where the next page of ``order`` over ``status`` starts: after ``key``, or at ``position``."""

    order: str
    status: str | None
    key: SortKey | None = None
    position: int | None = None

    def encode(self) -> str:
        body: dict[str, object] = {"o": self.order, "s": self.status}
        body |= {"k": list(self.key)} if self.key is not None else {"n": self.position}
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, *, order: str, status: str | None, sql_order: SqlOrder | None) -> PageCursor:
    """The cursor ``text`` if it was written for this order and status (InvalidCursorError otherwise)."""
    try:
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("cursor: not a cursor this API wrote; pass next_cursor as it came") from exc
    if not isinstance(body, dict) or body.get("o") != order or body.get("s") != status:
        raise InvalidCursorError(f"cursor: written for another order or status than order={order}, "
                                 f"status={status}; start again without a cursor")
    if sql_order is not None:
        key = body.get("k")
        if not isinstance(key, list) or len(key) != key_length(sql_order) or not isinstance(key[-1], int) \
                or not all(_is_key_value(v, nullable=sql_order == "uncertainty" and i == 1) for i, v in enumerate(key)):
            raise InvalidCursorError("cursor: not a cursor this API wrote; pass next_cursor as it came")
        return PageCursor(order, status, key=tuple(key))
    position = body.get("n")
    if not _is_key_value(position, nullable=False) or not isinstance(position, int) or position < 0:
        raise InvalidCursorError("cursor: not a cursor this API wrote; pass next_cursor as it came")
    return PageCursor(order, status, position=position)


def _is_key_value(value: object, *, nullable: bool) -> bool:
    """A number a database column holds: a 64-bit integer or a finite float (a confidence may be NULL: the tiers
    without one)."""
    if value is None:
        return nullable
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -INT64 <= value < INT64
    return isinstance(value, float) and math.isfinite(value)
