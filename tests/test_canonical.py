"""The canonical encoding: one byte string per value, before and after storage."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import mongoengine
import pytest
from bson import Decimal128, Int64, ObjectId
from bson.binary import Binary, UuidRepresentation
from bson.regex import Regex
from hypothesis import given, settings
from hypothesis import strategies as st

from mongoengine_activity._bson import normalize
from mongoengine_activity._canonical import (
    canonical,
    chain_link,
    field_units,
    macs_equal,
    pseudonym,
    sign_bytes,
    unit_digest,
)

_WHEN = dt.datetime(2026, 3, 1, 12, 30, 15, 123456)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"y": 2, "x": 1}, "a": 1}),
        ((1, 2, [3]), [1, 2, (3,)]),
        (_WHEN, _WHEN.replace(microsecond=123000)),
        (_WHEN.replace(tzinfo=dt.UTC), _WHEN),
        (
            dt.datetime(
                2026, 3, 1, 14, 30, 15, 123999, dt.timezone(dt.timedelta(hours=2))
            ),
            _WHEN,
        ),
        (decimal.Decimal("1.50"), Decimal128("1.50")),
        (
            uuid.UUID(int=7),
            Binary.from_uuid(uuid.UUID(int=7), UuidRepresentation.STANDARD),
        ),
        (Int64(5), 5),
        (Binary(b"ab", 0), b"ab"),
        (re.compile("a.c", re.IGNORECASE), Regex("a.c", "iu")),
    ],
    ids=[
        "key-order",
        "tuple-list",
        "microseconds",
        "aware-naive",
        "offset",
        "decimal",
        "uuid",
        "int64",
        "binary",
        "regex",
    ],
)
def test_equal_values_encode_alike(left: Any, right: Any) -> None:
    assert canonical(left) == canonical(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (1, 1.0),
        (1, True),
        (0, None),
        ("1", 1),
        (["ab"], ["a", "b"]),
        ({"a": "bc"}, {"ab": "c"}),
        (decimal.Decimal("1.0"), decimal.Decimal("1.00")),
        (b"x", "x"),
        (uuid.UUID(int=7), uuid.UUID(int=7).bytes),
        (0.0, -0.0),
        (ObjectId("65f000000000000000000001"), "65f000000000000000000001"),
    ],
    ids=[
        "int-float",
        "int-bool",
        "zero-none",
        "str-int",
        "split-string",
        "split-key",
        "decimal-precision",
        "bytes-str",
        "uuid-bytes",
        "signed-zero",
        "objectid-str",
    ],
)
def test_different_values_encode_differently(left: Any, right: Any) -> None:
    assert canonical(left) != canonical(right)


def test_a_value_bson_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode a set canonically"):
        canonical({"a": {1, 2}})


def test_field_units_split_meta_context_and_changes() -> None:
    son = {
        "_id": 1,
        "meta": {"a": 1, "b": 2},
        "context": {},
        "changes": [{"path": "x"}, {"path": "y"}],
        "type": "t",
        "sig": {"ignored": True},
    }

    assert field_units(son) == {
        "_id": 1,
        "meta.a": 1,
        "meta.b": 2,
        "context": {},
        "changes.0": {"path": "x"},
        "changes.1": {"path": "y"},
        "type": "t",
    }


def test_unit_digest_depends_on_salt_name_and_value() -> None:
    digest = unit_digest(b"salt", "meta.a", 1)

    assert digest == unit_digest(b"salt", "meta.a", 1)
    assert digest != unit_digest(b"salz", "meta.a", 1)
    assert digest != unit_digest(b"salt", "meta.b", 1)
    assert digest != unit_digest(b"salt", "meta.a", 2)


def test_sign_bytes_is_hmac_sha256_over_the_canonical_list() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", canonical(["a", 1]), hashlib.sha256).hexdigest()

    assert sign_bytes(b"k", "a", 1) == expected
    assert sign_bytes(b"other", "a", 1) != expected


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [("ab", "ab", True), ("ab", "ac", False), (None, "ab", False), ("ab", None, False)],
    ids=["same", "different", "left-none", "right-none"],
)
def test_macs_equal(left: str | None, right: str | None, equal: bool) -> None:
    assert macs_equal(left, right) is equal


def test_chain_link_and_pseudonym_are_stable_hex() -> None:
    assert chain_link("ab") == chain_link("ab") != chain_link("ac")
    alias = pseudonym(b"key", ObjectId("65f000000000000000000001"))
    assert re.fullmatch(r"anon_[0-9a-f]{32}", alias)
    assert alias == pseudonym(b"key", ObjectId("65f000000000000000000001"))
    assert alias != pseudonym(b"other", ObjectId("65f000000000000000000001"))


# --- round trip through the database

_KEYS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00.$"),
    min_size=1,
    max_size=8,
)
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.binary(max_size=12),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.one_of(
            st.none(),
            st.just(dt.UTC),
            st.integers(-12 * 60, 14 * 60).map(
                lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
            ),
        ),
    ),
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        min_value=decimal.Decimal("-1e12"),
        max_value=decimal.Decimal("1e12"),
        places=4,
    ),
    st.uuids(),
)
_VALUES = st.recursive(
    _LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(_KEYS, children, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=_VALUES)
def test_encoding_survives_a_round_trip_through_the_database(value: Any) -> None:
    collection = mongoengine.get_db()["canonical_round_trip"]
    stored_id = collection.insert_one({"v": normalize(value)}).inserted_id

    back = collection.find_one({"_id": stored_id})

    assert back is not None
    assert canonical(back["v"]) == canonical(value)
    assert canonical(normalize(value)) == canonical(value)
