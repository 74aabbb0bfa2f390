"""The pure diff of BSON-shaped values."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from bson import Binary, Decimal128, ObjectId
from bson.dbref import DBRef
from hypothesis import given, settings
from hypothesis import strategies as st

from mongoengine_activity._bson import normalize
from mongoengine_activity.diff import diff, diff_fields

from .replay import replay, without_nones


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, [{"path": "a", "from": 1, "to": 2}]),
        (
            {"a": {"b": 1}},
            {"a": {"b": 1, "c": 2}},
            [{"path": "a.c", "from": None, "to": 2}],
        ),
        ({"a": {"b": 1}}, {"a": {}}, [{"path": "a.b", "from": 1, "to": None}]),
        ({"l": [1, 2]}, {"l": [1, 3]}, [{"path": "l.1", "from": 2, "to": 3}]),
        (
            {"l": [1]},
            {"l": [1, 2, 3]},
            [
                {"path": "l.1", "from": None, "to": 2},
                {"path": "l.2", "from": None, "to": 3},
            ],
        ),
        ({"l": [1, 2]}, {"l": [2]}, [{"path": "l", "from": [1, 2], "to": [2]}]),
        ({"l": []}, {"l": [None]}, [{"path": "l", "from": [], "to": [None]}]),
        ({"l": [{"q": 1}]}, {"l": [{"q": 2}]}, [{"path": "l.0.q", "from": 1, "to": 2}]),
        ({"a": 1}, {"a": "1"}, [{"path": "a", "from": 1, "to": "1"}]),
        ({"a": 1}, {"a": 1.0}, []),
        ({"a": True}, {"a": 1}, [{"path": "a", "from": True, "to": 1}]),
        ({"a": None}, {}, []),
        ({"a": {"x": 1}}, {"a": [1]}, [{"path": "a", "from": {"x": 1}, "to": [1]}]),
    ],
    ids=[
        "equal",
        "scalar",
        "key-added",
        "key-removed",
        "list-element",
        "list-appended",
        "list-shrunk",
        "list-grown-by-null",
        "nested-in-list",
        "type-change",
        "int-equals-float",
        "bool-is-not-int",
        "none-equals-missing",
        "dict-to-list",
    ],
)
def test_diff_table(before: Any, after: Any, expected: list[dict[str, Any]]) -> None:
    assert diff_fields(before, after, sorted({*before, *after})) == expected


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Decimal128("1.0"), Decimal128("1.00")),
        (decimal.Decimal("2.50"), Decimal128("2.5")),
        (
            dt.datetime(2026, 1, 1, 12, 0, 0, 123456),
            dt.datetime(
                2026, 1, 1, 13, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1))
            ),
        ),
        (
            DBRef("customer", ObjectId("65f000000000000000000001")),
            ObjectId("65f000000000000000000001"),
        ),
        (uuid.UUID(int=7), Binary.from_uuid(uuid.UUID(int=7))),
        (Binary(b"raw", 0), b"raw"),
        ((1, 2), [1, 2]),
    ],
    ids=[
        "decimal128-scale",
        "decimal-vs-128",
        "datetime-ms-and-tz",
        "dbref-vs-id",
        "uuid",
        "binary",
        "tuple",
    ],
)
def test_values_equal_as_stored_never_show_as_changed(before: Any, after: Any) -> None:
    assert diff(normalize({"v": before}), normalize({"v": after})) == []


def test_datetimes_are_compared_in_utc_at_milliseconds() -> None:
    before = normalize(dt.datetime(2026, 1, 1, 12, 0, 0, 123000))
    after = normalize(dt.datetime(2026, 1, 1, 12, 0, 0, 124000, tzinfo=dt.UTC))

    assert diff(before, after, "at") == [
        {
            "path": "at",
            "from": dt.datetime(2026, 1, 1, 12, 0, 0, 123000),
            "to": dt.datetime(2026, 1, 1, 12, 0, 0, 124000),
        }
    ]


# Property tests: replaying the changes onto the before value yields the after value.

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31),
    st.text(max_size=5),
    st.sampled_from(
        [ObjectId("65f000000000000000000001"), Decimal128("1.5"), b"\x00\x01"]
    ),
)
keys = st.text(alphabet="abcxyz", min_size=1, max_size=3)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=20,
)
documents = st.dictionaries(keys, values, max_size=5)


@settings(max_examples=150, deadline=None)
@given(before=documents, after=documents)
def test_replaying_changes_turns_before_into_after(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    changes = diff_fields(before, after, sorted({*before, *after}))

    assert without_nones(replay(before, changes)) == without_nones(normalize(after))


@settings(max_examples=100, deadline=None)
@given(document=documents)
def test_a_value_never_differs_from_itself(document: dict[str, Any]) -> None:
    assert diff_fields(document, normalize(document), list(document)) == []


@settings(max_examples=100, deadline=None)
@given(before=documents, after=documents)
def test_no_change_has_equal_from_and_to(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    for change in diff_fields(before, after, sorted({*before, *after})):
        assert diff(change["from"], change["to"]) != []
