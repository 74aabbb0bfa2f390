"""Masking by dotted path, nested and inside lists."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mongoengine_activity.masking import (
    PathMatcher,
    drop_paths,
    keep_paths,
    mask_changes,
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"path": "card.number", "from": "1", "to": "2"},
            {"path": "card.number", "from": "#", "to": "#"},
        ),
        (
            {"path": "card", "from": None, "to": {"number": "1", "brand": "v"}},
            {"path": "card", "from": None, "to": {"number": "#", "brand": "v"}},
        ),
        (
            {"path": "items.2.card.number", "from": "1", "to": None},
            {"path": "items.2.card.number", "from": "#", "to": None},
        ),
        (
            {
                "path": "items",
                "from": [],
                "to": [{"card": {"number": "1"}}, {"sku": "x"}],
            },
            {
                "path": "items",
                "from": [],
                "to": [{"card": {"number": "#"}}, {"sku": "x"}],
            },
        ),
        (
            {"path": "card.number.last4", "from": "1", "to": "2"},
            {"path": "card.number.last4", "from": "#", "to": "#"},
        ),
        (
            {"path": "cardholder", "from": "a", "to": "b"},
            {"path": "cardholder", "from": "a", "to": "b"},
        ),
    ],
    ids=["exact", "parent", "inside-list", "list-of-parents", "below", "similar-name"],
)
def test_mask_changes(change: dict[str, Any], expected: dict[str, Any]) -> None:
    matcher = PathMatcher(["card.number", "items.card.number"])
    assert mask_changes([change], matcher, "#") == [expected]


def test_masking_never_mutates_its_input() -> None:
    value = {"number": "1"}
    change = {"path": "card", "from": None, "to": value}

    mask_changes([change], PathMatcher(["card.number"]), "#")

    assert value == {"number": "1"}


CARD = {"number": "4111", "cvv": "123", "owner": {"name": "Ann", "pin": "9"}}


@pytest.mark.parametrize(
    ("value", "remainders", "expected"),
    [
        (CARD, [("cvv",)], {"number": "4111", "owner": {"name": "Ann", "pin": "9"}}),
        (
            CARD,
            [("cvv",), ("owner", "pin")],
            {"number": "4111", "owner": {"name": "Ann"}},
        ),
        ([{"sku": "x", "cvv": "1"}, "y"], [("cvv",)], [{"sku": "x"}, "y"]),
        (None, [("cvv",)], None),
        ("plain", [("cvv",)], "plain"),
        (CARD, [], CARD),
    ],
    ids=["key", "nested", "list", "none", "scalar", "no-paths"],
)
def test_drop_paths(value: Any, remainders: Any, expected: Any) -> None:
    assert drop_paths(value, remainders) == expected


@pytest.mark.parametrize(
    ("value", "remainders", "expected"),
    [
        (CARD, [("cvv",)], {"cvv": "123"}),
        (
            CARD,
            [("owner", "name"), ("number",)],
            {"number": "4111", "owner": {"name": "Ann"}},
        ),
        ([{"sku": "x", "cvv": "1"}, {"qty": 2}], [("sku",)], [{"sku": "x"}, None]),
        (CARD, [("missing",)], None),
        ("plain", [("cvv",)], None),
        (None, [("cvv",)], None),
        (CARD, [()], CARD),
    ],
    ids=["key", "nested", "list", "missing", "scalar", "none", "whole"],
)
def test_keep_paths(value: Any, remainders: Any, expected: Any) -> None:
    assert keep_paths(value, remainders) == expected


values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=12,
)
remainders = st.lists(
    st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map(tuple), max_size=3
)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every key path in ``value`` (list elements share their parent's path)."""
    if isinstance(value, list):
        return set().union(*(_paths(item, prefix) for item in value))
    if isinstance(value, dict):
        return {(*prefix, key) for key in value}.union(
            *(_paths(item, (*prefix, key)) for key, item in value.items())
        )
    return set()


@settings(deadline=None)
@given(values, remainders)
def test_drop_paths_leaves_no_key_at_or_below_a_remainder(
    value: Any, rests: list[tuple[str, ...]]
) -> None:
    kept = _paths(drop_paths(value, rests))

    assert not any(path[: len(rest)] == rest for path in kept for rest in rests)
    assert kept <= _paths(value)


@settings(deadline=None)
@given(values, remainders)
def test_keep_paths_keeps_only_keys_on_the_way_to_or_below_a_remainder(
    value: Any, rests: list[tuple[str, ...]]
) -> None:
    kept = _paths(keep_paths(value, rests))

    assert all(
        any(path[: len(rest)] == rest or rest[: len(path)] == path for rest in rests)
        for path in kept
    )
    assert kept <= _paths(value)
