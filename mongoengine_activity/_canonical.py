"""One canonical byte encoding of BSON-shaped values, and the HMACs built on it.

Pure helpers: no database access and no MongoEngine documents. The encoding is
defined once, here, and gives the same bytes for a value before it is stored
and after it has been read back from MongoDB: keys are sorted at every depth,
datetimes count whole milliseconds since the epoch in UTC, a ``Decimal`` and
its ``Decimal128`` agree, a tuple is a list, a ``uuid.UUID`` is its standard
binary and an ``Int64`` is an int. Every value is tagged and every length is
prefixed, so two different values never share an encoding.

Signing (see :mod:`mongoengine_activity.signing`) does not MAC the activity
directly. Each *unit* of the activity (a top-level field, or one key of
``meta`` and ``context``, or one entry of ``changes``) gets a salted SHA-256
digest, and the MAC covers the digests. Redaction can then replace a unit's
value and drop its salt while the MAC still verifies, and any other change is
caught by a digest that no longer matches.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import math
import re
import struct
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson import ObjectId
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex
from bson.timestamp import Timestamp

__all__ = [
    "ALGORITHM",
    "FORMAT_VERSION",
    "SPLIT_FIELDS",
    "activity_mac",
    "after_digest",
    "canonical",
    "chain_link",
    "erasure_mac",
    "field_units",
    "macs_equal",
    "pseudonym",
    "redaction_mac",
    "sign_bytes",
    "stream_id",
    "unit_digest",
]

ALGORITHM = "HMAC-SHA256"
FORMAT_VERSION = 1
# Fields whose parts are digested one by one, so that redacting one key of
# ``meta`` or one change leaves the others verifiable.
SPLIT_FIELDS = ("meta", "context", "changes")

_EPOCH = dt.datetime(1970, 1, 1)
_NAN = struct.pack(">d", math.nan)
_LENGTH = struct.Struct(">Q")
_Write = Callable[[bytes], Any]


def _text(tag: bytes, text: str, write: _Write) -> None:
    data = text.encode("utf-8", "surrogatepass")
    write(tag + _LENGTH.pack(len(data)) + data)


def _millis(value: dt.datetime) -> int:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    delta = value - _EPOCH

    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _binary(subtype: int, data: bytes, write: _Write) -> None:
    write(b"b" + bytes([subtype]) + _LENGTH.pack(len(data)) + data)


def _write(value: Any, write: _Write) -> None:
    if value is None:
        write(b"N")
    elif value is True:
        write(b"T")
    elif value is False:
        write(b"F")
    elif isinstance(value, int):
        _text(b"i", str(int(value)), write)
    elif isinstance(value, float):
        write(b"f" + (_NAN if math.isnan(value) else struct.pack(">d", value)))
    elif isinstance(value, str):
        _text(b"s", value, write)
    elif isinstance(value, Mapping):
        _write_mapping(value, write)
    elif isinstance(value, list | tuple):
        write(b"L" + _LENGTH.pack(len(value)))
        for item in value:
            _write(item, write)
    elif isinstance(value, dt.datetime):
        write(b"d" + struct.pack(">q", _millis(value)))
    elif isinstance(value, DatetimeMS):
        write(b"d" + struct.pack(">q", int(value)))
    elif isinstance(value, dt.date):
        write(b"d" + struct.pack(">q", _millis(dt.datetime.combine(value, dt.time()))))
    elif isinstance(value, ObjectId):
        write(b"o" + value.binary)
    elif isinstance(value, Decimal128):
        write(b"m" + value.bid)
    elif isinstance(value, decimal.Decimal):
        write(b"m" + Decimal128(value).bid)
    elif isinstance(value, uuid.UUID):
        _binary(4, value.bytes, write)
    elif isinstance(value, Binary):
        _binary(value.subtype, bytes(value), write)
    elif isinstance(value, bytes | bytearray | memoryview):
        _binary(0, bytes(value), write)
    elif isinstance(value, DBRef):
        _write(value.id, write)
    elif isinstance(value, Regex | re.Pattern):
        _write_regex(value, write)
    elif isinstance(value, Code):
        _text(b"c", str(value), write)
        _write(value.scope, write)
    elif isinstance(value, Timestamp):
        write(b"t" + struct.pack(">II", value.time, value.inc))
    elif isinstance(value, MinKey):
        write(b"k")
    elif isinstance(value, MaxKey):
        write(b"K")
    else:
        raise TypeError(f"cannot encode a {type(value).__name__} canonically")


def _write_mapping(value: Mapping[Any, Any], write: _Write) -> None:
    items = sorted((str(key), item) for key, item in value.items())
    write(b"D" + _LENGTH.pack(len(items)))
    for key, item in items:
        _text(b"s", key, write)
        _write(item, write)


def _write_regex(value: Regex[Any] | re.Pattern[Any], write: _Write) -> None:
    regex = Regex.from_native(value) if isinstance(value, re.Pattern) else value
    pattern = regex.pattern
    if isinstance(pattern, bytes):
        pattern = pattern.decode("utf-8")
    flags: Any = regex.flags
    if isinstance(flags, int):
        bits = flags
        flags = "".join(
            letter
            for letter, bit in (
                ("i", re.IGNORECASE),
                ("l", re.LOCALE),
                ("m", re.MULTILINE),
                ("s", re.DOTALL),
                ("u", re.UNICODE),
                ("x", re.VERBOSE),
            )
            if bits & bit
        )
    _text(b"r", pattern, write)
    _text(b"s", "".join(sorted(str(flags))), write)


def canonical(value: Any) -> bytes:
    """Return the canonical encoding of ``value``.

    Equal for a value as the application holds it, as it is normalised for
    storage, and as MongoDB returns it. Raises ``TypeError`` for a value that
    BSON cannot hold.
    """
    parts: list[bytes] = []
    _write(value, parts.append)
    return b"".join(parts)


def field_units(son: Mapping[str, Any]) -> dict[str, Any]:
    """Split a stored activity into the units that are digested one by one.

    Every top-level field except ``sig`` is a unit, except that a non-empty
    ``meta`` or ``context`` is split per key (``meta.email``) and a non-empty
    ``changes`` per entry (``changes.0``).
    """
    units: dict[str, Any] = {}
    for name, value in son.items():
        if name == "sig":
            continue
        if name in SPLIT_FIELDS and isinstance(value, dict) and value:
            for key, item in value.items():
                units[f"{name}.{key}"] = item
        elif name in SPLIT_FIELDS and isinstance(value, list) and value:
            for index, item in enumerate(value):
                units[f"{name}.{index}"] = item
        else:
            units[name] = value

    return units


def unit_digest(salt: bytes, name: str, value: Any) -> str:
    """Return the salted SHA-256 of one unit, as hex."""
    hasher = hashlib.sha256(salt)
    hasher.update(canonical(name))
    hasher.update(canonical(value))
    return hasher.hexdigest()


def after_digest(name: str, value: Any) -> str:
    """The digest of a unit's value after redaction, as hex (unsalted: the
    redacted value is a pseudonym or the mask, stored in the clear anyway)."""
    return hashlib.sha256(canonical(["redacted", name, value])).hexdigest()


def sign_bytes(key: bytes, *parts: Any) -> str:
    """Return the HMAC-SHA256 of the canonical encoding of ``parts``, as hex."""
    return hmac.new(key, canonical(list(parts)), hashlib.sha256).hexdigest()


def chain_link(mac: str) -> str:
    """The hash the next activity of a stream stores as its predecessor."""
    return hashlib.sha256(canonical(["link", mac])).hexdigest()


def macs_equal(left: str | None, right: str | None) -> bool:
    """Compare two hex MACs in constant time; ``None`` never matches."""
    if not isinstance(left, str) or not isinstance(right, str):
        return False

    return hmac.compare_digest(
        left.encode("ascii", "replace"), right.encode("ascii", "replace")
    )


def stream_id(parts: Iterable[Any]) -> str:
    """A short stable id for a stream (an entity, or a tenant)."""
    return hashlib.sha256(canonical(list(parts))).hexdigest()[:32]


def pseudonym(key: bytes, user_id: Any) -> str:
    """A stable pseudonym for ``user_id``: keyed, so not reversible without the key."""
    return "anon_" + sign_bytes(key, "pseudonym", user_id)[:32]


def activity_mac(key: bytes, sig: Mapping[str, Any]) -> str:
    """The MAC of a signature's signed parts: everything but salts and ``mac``."""
    units = sorted((unit["n"], unit["d"]) for unit in sig["units"])
    return sign_bytes(
        key,
        "activity",
        sig["v"],
        sig["kid"],
        sig["alg"],
        sig["stream"],
        sig["seq"],
        sig["prev"],
        units,
    )


def redaction_mac(key: bytes, mac: str, record: Mapping[str, Any]) -> str:
    """The MAC of a redaction record of the activity whose MAC is ``mac``.

    ``record["after"]`` pairs each redacted unit with :func:`after_digest` of
    the value it holds after redaction, or ``None`` when it was removed, so a
    later change to a redacted unit is caught.
    """
    return sign_bytes(
        key,
        "redaction",
        mac,
        record["kid"],
        sorted(record["units"]),
        sorted(record.get("removed", ())),
        sorted((str(name), digest) for name, digest in record["after"]),
        record["at"],
    )


def erasure_mac(key: bytes, stream: str, record: Mapping[str, Any]) -> str:
    """The MAC of the record a deleted activity leaves in its stream's head."""
    return sign_bytes(
        key,
        "erasure",
        stream,
        record["kid"],
        record["seq"],
        record["prev"],
        record["mac"],
        record["at"],
    )
