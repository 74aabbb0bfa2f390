"""Keyset pagination over activities (read side).

A page is the next ``limit`` activities of a queryset in feed order
(``createdAt`` descending, then ``_id`` descending) *after* a position, not
after a number of skipped rows: activities inserted between two page fetches
are newer than every position already handed out, so they never shift a later
page, and pages never repeat or skip an activity, even when many share one
timestamp.

The cursor is opaque: ``createdAt`` and ``_id`` of the last item, encoded as
BSON, followed by an HMAC-SHA256 tag (truncated to 16 bytes) and base64url
encoded. The key is ``configure(cursor_key=...)``, or a random key made once per
process, so with several processes behind one API set a key. A garbage,
truncated or tampered cursor raises
:class:`~mongoengine_activity.errors.CursorError`.

Like the feed helpers, these functions narrow the queryset with ``filter()``;
``ActivityQuerySet.page()`` imports and calls them (the model layer does not
import the read side).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import bson
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions

from ._bson import normalize
from .errors import CursorError, QueryError
from .feeds import NEWEST_FIRST
from .options import current_settings

if TYPE_CHECKING:
    from .models import ActivityQuerySet

__all__ = ["Page", "Position", "decode_cursor", "encode_cursor", "page", "position"]

T = TypeVar("T")
Position = tuple[dt.datetime, Any]

_VERSION = b"\x01"
_TAG_BYTES = 16
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD
)
_PROCESS_KEY = secrets.token_bytes(32)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a feed: its ``items`` and the cursor of the next page
    (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def _key() -> bytes:
    configured = current_settings().cursor_key
    return configured.get_secret_value() if configured is not None else _PROCESS_KEY


def _tag(body: bytes) -> bytes:
    return hmac.new(_key(), body, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_cursor(at: Position) -> str:
    """The opaque, signed cursor of a position ``(createdAt, _id)``."""
    created_at, identifier = at
    body = _VERSION + bson.encode(
        {"c": created_at, "i": normalize(identifier)}, codec_options=_CODEC
    )
    token = base64.urlsafe_b64encode(body + _tag(body))
    return token.rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for; raises ``CursorError`` unless the
    cursor was made by :func:`encode_cursor` with the same key."""
    hint = "pass the next_cursor of a page returned by page(), unchanged"
    if not isinstance(cursor, str) or not cursor:
        raise CursorError(f"invalid page cursor {cursor!r}: {hint}", argument="after")

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise CursorError(
            f"invalid page cursor: not a cursor; {hint}", argument="after"
        ) from None
    body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if len(raw) <= _TAG_BYTES + 1 or body[:1] != _VERSION:
        raise CursorError(
            f"invalid page cursor: not a cursor; {hint}", argument="after"
        )
    if not hmac.compare_digest(tag, _tag(body)):
        raise CursorError(
            "invalid page cursor: it was altered or signed with another key "
            "(cursors from another process need configure(cursor_key=...)); "
            f"{hint}",
            argument="after",
        )

    try:
        values = bson.decode(body[1:], codec_options=_CODEC)
    except Exception:
        raise CursorError(
            f"invalid page cursor: unreadable; {hint}", argument="after"
        ) from None
    created_at = values.get("c")
    if not isinstance(created_at, dt.datetime) or "i" not in values:
        raise CursorError(f"invalid page cursor: incomplete; {hint}", argument="after")

    return created_at, values["i"]


def position(item: Any) -> Position:
    """``(createdAt, _id)`` of an activity or of a stored activity dict."""
    if isinstance(item, Mapping):
        created_at, identifier = item.get("createdAt"), item.get("_id")
    else:
        created_at, identifier = item.created_at, item.pk
    if not isinstance(created_at, dt.datetime) or identifier is None:
        raise QueryError(
            "page() needs createdAt and _id of every item; do not exclude them "
            "with only() or exclude()",
            argument="after",
        )

    return normalize(created_at), normalize(identifier)


def _after(at: Position) -> dict[str, Any]:
    created_at, identifier = at
    # The range bound on createdAt alone is what an index scan can use; the
    # $or only breaks ties within one millisecond.
    return {
        "createdAt": {"$lte": created_at},
        "$or": [{"createdAt": {"$lt": created_at}}, {"_id": {"$lt": identifier}}],
    }


def page(
    queryset: ActivityQuerySet, after: str | None = None, *, limit: int = 50
) -> Page[Any]:
    """The ``limit`` activities following the cursor ``after`` (the first page
    without one), newest first. A limit or ordering already set on the
    queryset is replaced."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise QueryError(
            f"limit must be a positive integer, not {limit!r}", argument="limit"
        )

    narrowed = queryset.order_by(*NEWEST_FIRST)
    if after is not None:
        narrowed = narrowed.filter(__raw__=_after(decode_cursor(after)))
    rows = list(narrowed.skip(0).limit(limit + 1))
    items = rows[:limit]
    next_cursor = encode_cursor(position(items[-1])) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


def newer_than(queryset: ActivityQuerySet, at: Position | None) -> ActivityQuerySet:
    """Activities after position ``at`` in the other direction: oldest first,
    for following the log (``tail``). Everything when ``at`` is ``None``."""
    ascending: ActivityQuerySet = queryset.order_by("created_at", "id")
    if at is None:
        return ascending

    created_at, identifier = at
    newer: ActivityQuerySet = ascending.filter(
        __raw__={
            "createdAt": {"$gte": created_at},
            "$or": [{"createdAt": {"$gt": created_at}}, {"_id": {"$gt": identifier}}],
        }
    )
    return newer
