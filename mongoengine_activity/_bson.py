"""Normalising plain BSON-shaped values the way MongoDB stores them.

Pure helpers: no database access and no MongoEngine documents. Values are
normalised once so that comparing, storing and hashing them agree: a datetime
becomes naive UTC at millisecond precision, a ``Decimal`` a ``Decimal128``, a
``DBRef`` its id, a UUID a standard-subtype ``Binary`` and a tuple a list.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import bson
from bson.binary import Binary, UuidRepresentation
from bson.dbref import DBRef
from bson.decimal128 import Decimal128

__all__ = [
    "digest",
    "leaf_equal",
    "normalize",
    "now_ms",
    "restore",
    "truncate_ms",
    "value_size",
]

_UTC = dt.UTC
_UUID_SUBTYPES = (3, 4)
# Leaves stored exactly as they are, returned at once (normalising runs on
# every save). Exact types only: a subclass such as Binary takes the full path.
_STORED_AS_IS = frozenset(
    {str, int, float, bool, type(None), bytes, bson.ObjectId, Decimal128}
)


def truncate_ms(value: dt.datetime) -> dt.datetime:
    """Return ``value`` as naive UTC cut to milliseconds, as MongoDB keeps it."""
    if value.tzinfo is not None:
        value = value.astimezone(_UTC).replace(tzinfo=None)

    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def now_ms() -> dt.datetime:
    """Return the current time as naive UTC at millisecond precision."""
    now = dt.datetime.now(_UTC)
    return now.replace(
        tzinfo=None, microsecond=now.microsecond - now.microsecond % 1000
    )


def _normalize_scalar(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return truncate_ms(value)
    if isinstance(value, decimal.Decimal):
        return Decimal128(value)
    if isinstance(value, DBRef):
        return value.id
    if isinstance(value, uuid.UUID):
        return Binary.from_uuid(value, UuidRepresentation.STANDARD)
    if isinstance(value, Binary) and value.subtype == 0:
        return bytes(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)

    return value


def normalize(value: Any) -> Any:
    """Return a copy of ``value`` with every leaf in its stored BSON form.

    Containers are copied, so the result never aliases the input: a document
    mutated in place later cannot change a before-image built from it. A
    document-like object with ``to_mongo()`` (an embedded document) becomes its
    stored mapping, and a referenced document becomes its primary key.
    """
    if type(value) in _STORED_AS_IS:
        return value
    if isinstance(value, dict | Mapping):
        if isinstance(value.get("_ref"), DBRef) and "_cls" in value:
            return {"_cls": value["_cls"], "_ref": value["_ref"].id}

        # Leaves are checked inline: most values are leaves, and a call each
        # would double the cost of normalising a document.
        return {
            str(key): item if type(item) in _STORED_AS_IS else normalize(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [
            item if type(item) in _STORED_AS_IS else normalize(item) for item in value
        ]

    to_mongo = getattr(value, "to_mongo", None)
    if to_mongo is not None:
        if getattr(value, "_is_document", False):
            return normalize(value.pk)

        return normalize(to_mongo())
    if hasattr(value, "pk") and hasattr(value, "document_type"):
        # A LazyReference: its id is all that is stored.
        return normalize(value.pk)

    return _normalize_scalar(value)


def restore(value: Any) -> Any:
    """Turn stored UUID binaries back into ``uuid.UUID``; the inverse of storage."""
    if isinstance(value, dict):
        return {key: restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [restore(item) for item in value]
    if isinstance(value, Binary) and value.subtype in _UUID_SUBTYPES:
        representation = (
            UuidRepresentation.STANDARD
            if value.subtype == 4
            else UuidRepresentation.PYTHON_LEGACY
        )
        return value.as_uuid(representation)

    return value


def leaf_equal(before: Any, after: Any) -> bool:
    """Compare two normalised leaves the way MongoDB compares stored values.

    Decimals compare by value (``1.0`` equals ``1.00``), numbers across int,
    float and Decimal128 by value, and booleans only with booleans.
    """
    if isinstance(before, bool) or isinstance(after, bool):
        return type(before) is type(after) and before == after
    if isinstance(before, Decimal128) or isinstance(after, Decimal128):
        left = _as_decimal(before)
        right = _as_decimal(after)
        return left is not None and right is not None and left == right

    try:
        return bool(before == after)
    except Exception:
        return False


def _as_decimal(value: Any) -> decimal.Decimal | None:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return decimal.Decimal(value)

    return None


def value_size(value: Any) -> int:
    """Return the number of bytes ``value`` takes inside a BSON document."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 5
    if isinstance(value, bytes):
        return len(value) + 5
    if isinstance(value, dict | list):
        # Less the document's length and end (5) and the element's type and
        # name "v" (3).
        return len(bson.encode({"v": value})) - 8

    # At least as much as any other scalar takes.
    return 16


def digest(value: Any) -> str:
    """Return the SHA-256 of ``value``'s BSON encoding, as hex."""
    return hashlib.sha256(bson.encode({"v": value})).hexdigest()
