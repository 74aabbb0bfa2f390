"""``Activity.objects.stats()``: one aggregation pipeline, exact numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mongoengine_activity import Activity, QueryError, log_activity
from mongoengine_activity.stats import pipeline

from .spies import CollectionSpy

T0 = dt.datetime(2026, 3, 1, 22, 0, 0)
ALL = ["count", "unique_users", "unique_entities"]


@pytest.fixture(autouse=True)
def known_data() -> None:
    """Ten activities over two days; "-" marks a system action (no user).

    hour        verb             entity      user
    03-01 22:00 order_created    Order 1     ann
    03-01 22:10 order_updated    Order 1     ann
    03-01 22:20 order_updated    Order 1     bob
    03-01 23:00 order_created    Order 2     bob
    03-01 23:30 order_updated    Order 2     -
    03-02 00:00 payment_made     Payment 1   ann
    03-02 00:00 payment_made     Payment 2   cid
    03-02 01:00 order_deleted    Order 1     -
    03-02 01:59 customer_created Customer 1  cid
    03-02 02:00 order_updated    Order 2     ann
    """
    rows = [
        (0, "order_created", ("Order", 1), "ann"),
        (10, "order_updated", ("Order", 1), "ann"),
        (20, "order_updated", ("Order", 1), "bob"),
        (60, "order_created", ("Order", 2), "bob"),
        (90, "order_updated", ("Order", 2), None),
        (120, "payment_made", ("Payment", 1), "ann"),
        (120, "payment_made", ("Payment", 2), "cid"),
        (180, "order_deleted", ("Order", 1), None),
        (239, "customer_created", ("Customer", 1), "cid"),
        (240, "order_updated", ("Order", 2), "ann"),
    ]
    for minutes, verb, entity, user in rows:
        log_activity(
            verb,
            entity=entity,
            user_id=user,
            created_at=T0 + dt.timedelta(minutes=minutes),
            on_error="raise",
        )


def g(group: Any, count: int, users: int, entities: int) -> dict[str, Any]:
    return {
        "group": group,
        "count": count,
        "unique_users": users,
        "unique_entities": entities,
    }


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "type",
            [
                g("order_updated", 4, 2, 2),
                g("order_created", 2, 2, 2),
                g("payment_made", 2, 2, 2),
                g("customer_created", 1, 1, 1),
                g("order_deleted", 1, 0, 1),
            ],
        ),
        (
            "user",
            [
                g("ann", 4, 1, 3),
                g(None, 2, 0, 2),
                g("bob", 2, 1, 2),
                g("cid", 2, 1, 2),
            ],
        ),
        (
            "entity",
            [g("Order", 7, 2, 2), g("Payment", 2, 2, 2), g("Customer", 1, 1, 1)],
        ),
        ("day", [g("2026-03-01", 5, 2, 2), g("2026-03-02", 5, 2, 5)]),
        (
            "hour",
            [
                g("2026-03-01T22:00", 3, 2, 1),
                g("2026-03-01T23:00", 2, 1, 1),
                g("2026-03-02T00:00", 2, 2, 2),
                g("2026-03-02T01:00", 2, 1, 2),
                g("2026-03-02T02:00", 1, 1, 1),
            ],
        ),
    ],
    ids=["type", "user", "entity", "day", "hour"],
)
def test_stats_on_a_known_data_set(group_by: str, expected: list[Any]) -> None:
    assert Activity.objects.stats(group_by, date_range=None, metrics=ALL) == expected


def test_stats_is_one_aggregation() -> None:
    with CollectionSpy(Activity) as spy:
        Activity.objects.stats("day", date_range=None, metrics=ALL)

    assert spy.calls == ["aggregate"]


def test_stats_counts_by_default() -> None:
    result = Activity.objects.stats("entity", date_range=None)

    assert result == [
        {"group": "Order", "count": 7},
        {"group": "Payment", "count": 2},
        {"group": "Customer", "count": 1},
    ]


def test_stats_without_count_sort_by_group() -> None:
    result = Activity.objects.stats(
        "entity", date_range=None, metrics=["unique_entities"]
    )

    assert result == [
        {"group": "Customer", "unique_entities": 1},
        {"group": "Order", "unique_entities": 2},
        {"group": "Payment", "unique_entities": 2},
    ]


@pytest.mark.parametrize(
    ("date_range", "expected"),
    [
        ((T0, T0 + dt.timedelta(minutes=20)), 2),
        ((T0 + dt.timedelta(minutes=120), T0 + dt.timedelta(minutes=121)), 2),
        ((T0 + dt.timedelta(minutes=240), None), 1),
        ((None, T0), 0),
        ("today", 5),
        ("last7days", 10),
        (None, 10),
    ],
    ids=[
        "start-in-end-out",
        "same-instant",
        "open-end",
        "before",
        "today",
        "last7days",
        "all",
    ],
)
def test_stats_date_range(date_range: Any, expected: int) -> None:
    now = dt.datetime(2026, 3, 2, 12, 0)
    result = Activity.objects.stats("entity", date_range=date_range, now=now)

    assert sum(row["count"] for row in result) == expected


def test_stats_default_range_is_the_last_30_days() -> None:
    long_after = dt.datetime(2026, 4, 5)

    assert Activity.objects.stats(now=long_after) == []
    assert len(Activity.objects.stats(now=dt.datetime(2026, 3, 30))) == 5


def test_stats_keep_the_querysets_filter() -> None:
    result = Activity.objects.filter(user_id="ann").stats("type", date_range=None)

    assert result == [
        {"group": "order_updated", "count": 2},
        {"group": "order_created", "count": 1},
        {"group": "payment_made", "count": 1},
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"group_by": "month"},
            "unknown group_by 'month'; valid values: type, user, entity, day, hour",
        ),
        (
            {"metrics": ["count", "avg"]},
            "unknown metric 'avg'; valid values: count, unique_users, unique_entities",
        ),
        ({"metrics": []}, "metrics is empty"),
        ({"group_by": None}, "group_by must be one of"),
        ({"date_range": "forever"}, "unknown date_range 'forever'"),
    ],
    ids=["group", "metric", "no-metrics", "group-none", "range"],
)
def test_bad_stats_arguments_raise_value_errors(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(QueryError, match=match) as raised:
        Activity.objects.stats(**kwargs)

    assert isinstance(raised.value, ValueError)


def test_the_pipeline_is_plain_data() -> None:
    steps = pipeline(
        "type",
        date_range=(T0, None),
        metrics=["count", "count", "unique_users"],
    )

    assert steps == [
        {"$match": {"createdAt": {"$gte": T0}}},
        {
            "$group": {
                "_id": "$type",
                "count": {"$sum": 1},
                "unique_users": {
                    "$addToSet": {
                        "$cond": [{"$eq": ["$userId", None]}, "$$REMOVE", "$userId"]
                    }
                },
            }
        },
        {
            "$project": {
                "_id": 0,
                "group": "$_id",
                "count": 1,
                "unique_users": {"$size": "$unique_users"},
            }
        },
        {"$sort": {"count": -1, "group": 1}},
    ]
