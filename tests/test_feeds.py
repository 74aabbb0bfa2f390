"""Feeds and search on ``Activity.objects``."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId
from bson.regex import Regex

from mongoengine_activity import (
    Activity,
    ActivityQuerySet,
    QueryError,
    log_activity,
)
from mongoengine_activity import feeds as feeds_module
from mongoengine_activity.pages import _after

from .conftest import requires_server

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def log(
    type_: str,
    entity: tuple[str, Any] = ("Order", 1),
    *,
    seconds: float = 0,
    user_id: Any = None,
    team_id: Any = None,
    data: dict[str, Any] | None = None,
) -> Activity:
    activity = log_activity(
        type_,
        entity=entity,
        user_id=user_id,
        team_id=team_id,
        data=data,
        created_at=T0 + dt.timedelta(seconds=seconds),
        on_error="raise",
    )
    assert activity is not None
    return activity


def ids(queryset: Any) -> list[Any]:
    return [activity.pk for activity in queryset]


@pytest.fixture
def shop() -> dict[str, Activity]:
    """Seven activities over three seconds; ``b1`` and ``b2`` share a second."""
    return {
        "a": log("order_created", ("Order", 1), seconds=0, user_id="ann", team_id=1),
        "b1": log("order_updated", ("Order", 1), seconds=1, user_id="bob", team_id=1),
        "b2": log("payment_made", ("Payment", 7), seconds=1, user_id="ann"),
        "c": log("order_created", ("Order", 2), seconds=2, user_id="bob", team_id=2),
        "d": log("customer_created", ("Customer", 5), seconds=3, user_id="ann"),
        "e": log("order_deleted", ("Order", 1), seconds=4, team_id=1),
        "f": log("payment_made", ("Payment", 8), seconds=5, user_id="cid"),
    }


def test_global_feed_is_newest_first(shop: dict[str, Activity]) -> None:
    feed = Activity.objects.global_feed()

    assert isinstance(feed, ActivityQuerySet)
    assert ids(feed) == [shop[key].pk for key in ("f", "e", "d", "c", "b2", "b1", "a")]


def test_equal_timestamps_are_ordered_by_id_descending() -> None:
    logged = [log("order_updated", ("Order", n)) for n in range(6)]

    assert ids(Activity.objects.global_feed()) == sorted(
        (activity.pk for activity in logged), reverse=True
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"entities": "Order"}, ["e", "c", "b1", "a"]),
        ({"entities": ["Payment", "Customer"]}, ["f", "d", "b2"]),
        ({"types": "payment_made"}, ["f", "b2"]),
        ({"types": ["order_created", "order_deleted"]}, ["e", "c", "a"]),
        ({"entities": "Order", "types": "order_created"}, ["c", "a"]),
        ({"limit": 2}, ["f", "e"]),
        ({"limit": None}, ["f", "e", "d", "c", "b2", "b1", "a"]),
        ({"entities": "Nothing"}, []),
    ],
    ids=[
        "one-entity",
        "entities",
        "one-type",
        "types",
        "entity-and-type",
        "limit",
        "no-limit",
        "empty",
    ],
)
def test_global_feed_narrows(
    shop: dict[str, Activity], kwargs: dict[str, Any], expected: list[str]
) -> None:
    assert ids(Activity.objects.global_feed(**kwargs)) == [
        shop[key].pk for key in expected
    ]


@pytest.mark.parametrize(
    ("helper", "args", "kwargs", "expected"),
    [
        ("user_feed", ("ann",), {}, ["d", "b2", "a"]),
        ("user_feed", ("ann",), {"entities": "Order"}, ["a"]),
        ("user_feed", ("ann",), {"limit": 1}, ["d"]),
        ("user_feed", ("nobody",), {}, []),
        ("team_feed", (1,), {}, ["e", "b1", "a"]),
        ("team_feed", (1,), {"types": "order_deleted"}, ["e"]),
        ("entity_history", ("Order", 1), {}, ["e", "b1", "a"]),
        ("entity_history", ("Order", 1), {"types": "order_updated"}, ["b1"]),
        ("entity_history", ("Payment", 1), {}, []),
    ],
    ids=[
        "user",
        "user-entity",
        "user-limit",
        "user-unknown",
        "team",
        "team-type",
        "entity",
        "entity-type",
        "entity-unknown",
    ],
)
def test_scoped_feeds(
    shop: dict[str, Activity],
    helper: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    expected: list[str],
) -> None:
    feed = getattr(Activity.objects, helper)(*args, **kwargs)

    assert isinstance(feed, ActivityQuerySet)
    assert ids(feed) == [shop[key].pk for key in expected]


def test_user_feed_matches_stored_id_types() -> None:
    user = ObjectId()
    mine = log("order_created", user_id=user)
    number = log("order_created", user_id=7)
    text = log("order_created", user_id="7")

    assert ids(Activity.objects.user_feed(user)) == [mine.pk]
    assert ids(Activity.objects.user_feed(str(user))) == []
    assert ids(Activity.objects.user_feed(7)) == [number.pk]
    assert ids(Activity.objects.user_feed("7")) == [text.pk]


def test_feeds_chain_and_keep_the_querysets_own_filter(
    shop: dict[str, Activity],
) -> None:
    # A filter set before the helper (a tenant, say) flows through it.
    team_one = Activity.objects.filter(team_id=1)

    assert ids(team_one.global_feed()) == [shop[k].pk for k in ("e", "b1", "a")]
    assert ids(team_one.user_feed("bob")) == [shop["b1"].pk]
    assert ids(team_one.search("order")) == [shop[k].pk for k in ("e", "b1", "a")]
    assert ids(Activity.objects.user_feed("ann").filter(type="payment_made")) == [
        shop["b2"].pk
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": True}, "limit must be a positive integer"),
        ({"entities": []}, "entities must be a non-empty string"),
        ({"types": [""]}, "types must be a non-empty string"),
    ],
    ids=["zero-limit", "bool-limit", "no-entities", "empty-type"],
)
def test_bad_feed_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(QueryError, match=match):
        Activity.objects.global_feed(**kwargs)


def test_entity_history_needs_a_type() -> None:
    with pytest.raises(QueryError, match="entity_type must be a non-empty string"):
        Activity.objects.entity_history("", 1)


# -- search -------------------------------------------------------------------


@pytest.fixture
def notes() -> dict[str, Activity]:
    return {
        "regex": log("note_added", data={"text": "match .* anything"}, seconds=1),
        "paren": log("note_added", data={"text": "call f(x"}, seconds=2),
        "dollar": log("note_added", data={"text": "costs $5"}, seconds=3),
        "unicode": log("note_added", data={"text": "Ærøskøbing café ☕"}, seconds=4),
        "number": log("note_added", data={"text": 42, "n": "x"}, seconds=5),
        "nested": log("note_added", data={"inner": {"text": "deep"}}, seconds=6),
        "verb": log("refund_issued", ("Payment", 9), seconds=7),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (".*", ["regex"]),
        ("(", ["paren"]),
        ("f(x", ["paren"]),
        ("$", ["dollar"]),
        ("$5", ["dollar"]),
        ("café ☕", ["unicode"]),
        ("ÆRØ", ["unicode"]),
        ("refund", ["verb"]),
        ("payMENT", ["verb"]),
        ("[a-z]+", []),
        ("\\", []),
        ("42", []),
        ("deep", []),
        ("no such words", []),
    ],
    ids=[
        "dot-star",
        "open-paren",
        "call",
        "dollar",
        "dollar-5",
        "unicode",
        "unicode-case",
        "verb",
        "entity-type",
        "char-class",
        "backslash",
        "number-not-string",
        "nested-not-searched",
        "nothing",
    ],
)
def test_search_text_is_literal_and_case_insensitive(
    notes: dict[str, Activity], text: str, expected: list[str]
) -> None:
    found = Activity.objects.search(text, use_text_index=False)

    assert ids(found) == [notes[key].pk for key in expected]


def test_search_without_text_returns_everything_newest_first(
    notes: dict[str, Activity],
) -> None:
    expected = [notes[key].pk for key in reversed(list(notes))]

    assert ids(Activity.objects.search()) == expected
    assert ids(Activity.objects.search("")) == expected


def test_search_filters_combine(shop: dict[str, Activity]) -> None:
    found = Activity.objects.search(
        "order", user_id="bob", types="order_created", use_text_index=False
    )

    assert ids(found) == [shop["c"].pk]
    assert ids(Activity.objects.search("payment", entities="Order")) == []


@pytest.mark.parametrize(
    ("date_range", "expected"),
    [
        ((T0, T0 + dt.timedelta(seconds=1)), ["a"]),
        ((T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)), ["b2", "b1"]),
        ((T0 + dt.timedelta(seconds=4), None), ["f", "e"]),
        ((None, T0 + dt.timedelta(seconds=1)), ["a"]),
        ((T0, T0), []),
        (
            (
                (T0 + dt.timedelta(seconds=1))
                .replace(tzinfo=dt.UTC)
                .astimezone(dt.timezone(dt.timedelta(hours=2))),
                T0 + dt.timedelta(seconds=2),
            ),
            ["b2", "b1"],
        ),
        (
            (
                T0 + dt.timedelta(microseconds=1),
                T0 + dt.timedelta(seconds=1, microseconds=1),
            ),
            ["b2", "b1"],
        ),
    ],
    ids=[
        "start-inclusive",
        "end-exclusive",
        "open-end",
        "open-start",
        "empty",
        "aware",
        "sub-millisecond",
    ],
)
def test_search_date_range_edges(
    shop: dict[str, Activity],
    date_range: tuple[dt.datetime | None, dt.datetime | None],
    expected: list[str],
) -> None:
    found = Activity.objects.search(date_range=date_range)

    assert ids(found) == [shop[key].pk for key in expected]


NOW = dt.datetime(2026, 3, 10, 6, 0)


@pytest.mark.parametrize(
    ("date_range", "expected"),
    [
        ("today", ["later", "early"]),
        ("last7days", ["later", "early", "yesterday", "week"]),
        ("last30days", ["later", "early", "yesterday", "week", "month"]),
    ],
    ids=["today", "last7days", "last30days"],
)
def test_named_date_ranges(date_range: str, expected: list[str]) -> None:
    def at(delta: dt.timedelta) -> float:
        return (NOW + delta - T0).total_seconds()

    logged = {
        "later": log("x", seconds=at(dt.timedelta(hours=1))),
        "early": log("x", seconds=at(dt.timedelta(hours=-5))),
        "yesterday": log("x", seconds=at(dt.timedelta(hours=-7))),
        "week": log("x", seconds=at(dt.timedelta(days=-6, hours=-23))),
        "month": log("x", seconds=at(dt.timedelta(days=-29))),
        "old": log("x", seconds=at(dt.timedelta(days=-31))),
    }
    found = Activity.objects.search(date_range=date_range, now=NOW)

    assert ids(found) == [logged[key].pk for key in expected]


@pytest.mark.parametrize(
    ("date_range", "match"),
    [
        ("yesterday", "unknown date_range 'yesterday'; use one of today"),
        ((T0,), "must be a \\(start, end\\) pair"),
        (("2026-01-01", None), "bounds must be datetimes or None"),
        ((T0, T0 - dt.timedelta(days=1)), "ends .* before it starts"),
    ],
    ids=["unknown-name", "one-bound", "string-bound", "reversed"],
)
def test_bad_date_ranges_raise(date_range: Any, match: str) -> None:
    with pytest.raises(QueryError, match=match):
        Activity.objects.search(date_range=date_range)


def test_search_text_must_be_a_string() -> None:
    with pytest.raises(QueryError, match="text must be a string"):
        Activity.objects.search(5)  # type: ignore[arg-type]


def test_search_uses_text_when_told_to() -> None:
    query = Activity.objects.search('say "hi"', use_text_index=True)._query

    assert query["$text"] == {"$search": '"say  hi"'}


def test_mongomock_has_no_text_index() -> None:
    feeds_module._text_indexes.clear()

    assert feeds_module.has_text_index(Activity.objects) is False


@requires_server
def test_search_uses_a_text_index_on_the_server(notes: dict[str, Activity]) -> None:
    collection = Activity._get_collection()
    collection.create_index([("$**", "text")], name="search_text")
    feeds_module._text_indexes.clear()
    try:
        assert feeds_module.has_text_index(Activity.objects) is True
        found = Activity.objects.search("café")
        assert "$text" in found._query
        assert ids(found) == [notes["unicode"].pk]
    finally:
        collection.drop_index("search_text")
        feeds_module._text_indexes.clear()


# -- the light read path --------------------------------------------------------


def test_as_dicts_returns_stored_dicts_without_documents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = uuid.UUID("12345678-1234-5678-1234-567812345678")
    logged = log("order_created", user_id="ann", data={"ref": account})

    def no_documents(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("built a Document")

    monkeypatch.setattr(Activity, "_from_son", no_documents)
    [row] = list(Activity.objects.user_feed("ann").as_dicts())
    first = Activity.objects.global_feed().as_dicts().first()

    assert row == first
    assert row["_id"] == logged.pk
    assert row["userId"] == "ann"
    assert row["meta"] == {"ref": account}
    assert row["entity"] == {"type": "Order", "id": 1}
    assert row["createdAt"] == T0


# -- every helper is served by an index ------------------------------------------

NEWEST = [("createdAt", -1), ("_id", -1)]


def _conditions(query: dict[str, Any]) -> dict[str, Any]:
    """Field conditions of a query, with ``$and`` flattened."""
    found: dict[str, Any] = {}
    for key, value in query.items():
        if key == "$and":
            for part in value:
                found.update(_conditions(part))
        elif not key.startswith("$"):
            found[key] = value

    return found


def _is_point(condition: Any) -> bool:
    """Equality or ``$in``: what an index prefix before the sort can serve."""
    return not isinstance(condition, dict) or set(condition) == {"$in"}


def serving_index(queryset: ActivityQuerySet) -> str:
    """The declared index with the longest prefix of equality fields of the
    query followed by the feed sort (``createdAt``, ``_id`` descending)."""
    assert queryset._ordering == NEWEST
    conditions = _conditions(queryset._query)
    candidates = []
    for spec in Activity._meta["index_specs"]:
        fields = spec["fields"]
        prefix = [name for name, _ in fields[:-2]]
        if fields[-2:] == NEWEST and all(
            name in conditions and _is_point(conditions[name]) for name in prefix
        ):
            candidates.append((len(prefix), spec["name"]))
    assert candidates, f"no declared index serves {queryset._query}"

    return str(max(candidates)[1])


HELPERS: list[tuple[str, Any, str]] = [
    ("global", lambda q: q.global_feed(), "createdAt"),
    (
        "global-entities",
        lambda q: q.global_feed(entities=["Order", "Payment"]),
        "entityType_createdAt",
    ),
    ("global-types", lambda q: q.global_feed(types=["a", "b"]), "type_createdAt"),
    ("user", lambda q: q.user_feed("ann", types="x"), "userId_createdAt"),
    ("team", lambda q: q.team_feed(1, entities="Order"), "teamId_createdAt"),
    ("entity", lambda q: q.entity_history("Order", 1), "entity_createdAt"),
    ("search", lambda q: q.search("x", use_text_index=False), "createdAt"),
    ("search-range", lambda q: q.search(date_range=(T0, None)), "createdAt"),
    (
        "search-user",
        lambda q: q.search("x", user_id="ann", use_text_index=False),
        "userId_createdAt",
    ),
    (
        "search-types",
        lambda q: q.search("x", types="a", use_text_index=False),
        "type_createdAt",
    ),
    (
        "page",
        lambda q: q.user_feed("ann").filter(__raw__=_after((T0, ObjectId()))),
        "userId_createdAt",
    ),
]


@pytest.mark.parametrize(
    ("build", "index"),
    [(build, index) for _, build, index in HELPERS],
    ids=[name for name, _, _ in HELPERS],
)
def test_every_helper_is_served_by_a_declared_index(build: Any, index: str) -> None:
    assert serving_index(build(Activity.objects)) == index


@requires_server
@pytest.mark.parametrize(
    "build", [build for _, build, _ in HELPERS], ids=[name for name, _, _ in HELPERS]
)
def test_no_helper_scans_the_collection_on_the_server(
    shop: dict[str, Activity], build: Any
) -> None:
    Activity.ensure_indexes()
    plan = str(build(Activity.objects).explain())

    assert "COLLSCAN" not in plan


def test_the_model_layer_imports_no_read_side_module() -> None:
    import ast
    import inspect

    from mongoengine_activity import models

    tree = ast.parse(inspect.getsource(models))
    read_side = {"feeds", "pages", "stats", "templates"}
    top_level = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
    }
    local = {
        node.module
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and node.module
    }

    assert not top_level & read_side
    assert read_side <= local


@pytest.fixture
def two_tenants() -> Iterator[dict[str, list[Any]]]:
    """Strict multi-tenancy; three activities of tenant a, two of tenant b."""
    from mongoengine_activity import activity_context, configure

    configure(multi_tenant=True, tenant_field="organizationId")
    logged: dict[str, list[Any]] = {"a": [], "b": []}
    for n, tenant in enumerate("ababa"):
        with activity_context(tenant=tenant):
            logged[tenant].append(
                log("order_updated", ("Order", n), seconds=n, user_id="ann").pk
            )
    yield logged
    Activity._get_collection().delete_many({})
    configure(reset=True)


def test_every_helper_stays_in_the_tenant_in_context(
    two_tenants: dict[str, list[Any]],
) -> None:
    from mongoengine_activity import TenantRequiredError, activity_context

    newest_first = list(reversed(two_tenants["a"]))
    with activity_context(tenant="a"):
        assert ids(Activity.objects.global_feed()) == newest_first
        assert ids(Activity.objects.user_feed("ann")) == newest_first
        assert ids(Activity.objects.entity_history("Order", 1)) == []
        assert ids(Activity.objects.search("order")) == newest_first
        first = Activity.objects.page(limit=2)
        rest = Activity.objects.page(first.next_cursor, limit=2)
        assert [a.pk for a in first] + [a.pk for a in rest] == newest_first
        assert Activity.objects.stats(date_range=None) == [
            {"group": "order_updated", "count": 3}
        ]
        oldest_first = Activity.objects.order_by("created_at").as_dicts()
        assert [row["_id"] for row in oldest_first] == two_tenants["a"]

    with pytest.raises(TenantRequiredError):
        list(Activity.objects.global_feed())
    with pytest.raises(TenantRequiredError):
        Activity.objects.stats(date_range=None)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda objects: objects.user_feed({"$ne": None}), "user_id"),
        (lambda objects: objects.user_feed({"$regex": "."}), "user_id"),
        (lambda objects: objects.user_feed(["ann", "bob"]), "user_id"),
        (lambda objects: objects.team_feed({"$exists": False}), "team_id"),
        (lambda objects: objects.entity_history("Order", {"$gte": 0}), "entity_id"),
        (lambda objects: objects.search(user_id={"$ne": "x"}), "user_id"),
        (lambda objects: objects.user_feed(re.compile(".")), "user_id"),
        (lambda objects: objects.team_feed(Regex(".")), "team_id"),
    ],
    ids=[
        "user-ne",
        "user-regex",
        "user-list",
        "team",
        "entity",
        "search-user",
        "compiled-pattern",
        "bson-regex",
    ],
)
def test_ids_must_be_plain_values_not_query_operators(call: Any, argument: str) -> None:
    log("order_created", user_id="ann", team_id="t1")
    log("order_created", user_id="bob", team_id="t2")

    with pytest.raises(QueryError, match=rf"^{argument} must be one id") as caught:
        call(Activity.objects)
    assert caught.value.argument == argument


@pytest.mark.parametrize(
    "user_id",
    [ObjectId("65f0c0ffee0000000000beef"), 7, "ann"],
    ids=["objectid", "int", "str"],
)
def test_plain_ids_are_matched_as_stored(user_id: Any) -> None:
    log("order_created", user_id=user_id)
    log("order_created", user_id="someone-else")

    assert Activity.objects.user_feed(user_id).count() == 1
