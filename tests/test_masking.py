"""Masking by dotted path, nested and inside lists."""

from __future__ import annotations

from typing import Any

import pytest

from mongoengine_activity.masking import PathMatcher, mask_changes


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
