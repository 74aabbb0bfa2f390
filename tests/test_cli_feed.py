"""``mongoengine-activity feed``."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from mongoengine_activity import Activity, log_activity
from mongoengine_activity.cli import _feed, main

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(autouse=True)
def same_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command reads the test database instead of connecting anew."""
    monkeypatch.setattr(_feed, "connect", lambda uri, db: None)


@pytest.fixture
def logged() -> None:
    rows = [
        ("order_created", ("Order", 1), "ann", {}),
        ("order_shipped", ("Order", 1), "bob", {"orderId": "A-1", "carrier": "UPS"}),
        ("payment_made", ("Payment", 9), None, {}),
    ]
    for n, (verb, entity, user, data) in enumerate(rows):
        log_activity(
            verb,
            entity=entity,
            user_id=user,
            data=data,
            created_at=T0 + dt.timedelta(minutes=n),
            on_error="raise",
        )
    Activity.register_template(
        "order_shipped", message="Order {{orderId}} via {{carrier}}"
    )


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["feed", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_feed_prints_a_table_newest_first(logged: None) -> None:
    assert run().splitlines() == [
        "when (UTC)           type           entity     user  message",
        "-------------------  -------------  ---------  ----  -----------------",
        "2026-03-01 12:02:00  payment_made   Payment:9  -     payment_made",
        "2026-03-01 12:01:00  order_shipped  Order:1    bob   Order A-1 via UPS",
        "2026-03-01 12:00:00  order_created  Order:1    ann   order_created",
    ]


@pytest.mark.parametrize(
    ("args", "types"),
    [
        (["--user", "ann"], ["order_created"]),
        (["--entity", "Order"], ["order_shipped", "order_created"]),
        (["--entity", "Order:1", "--type", "order_created"], ["order_created"]),
        (["--entity", "Order:2"], []),
        (["--search", "payment"], ["payment_made"]),
        (["--limit", "1"], ["payment_made"]),
        (["--range", "2026-03-01T12:01..2026-03-01T12:02"], ["order_shipped"]),
    ],
    ids=["user", "entity-type", "entity-id", "no-entity", "search", "limit", "range"],
)
def test_feed_filters(logged: None, args: list[str], types: list[str]) -> None:
    output = run(*args)
    if not types:
        assert output == "No activities.\n"
        return

    rows = output.splitlines()[2:]
    assert [row.split()[2] for row in rows] == types


def test_feed_reports_bad_arguments() -> None:
    result = CliRunner().invoke(main, ["feed", "--range", "forever"])

    assert result.exit_code == 2
    assert (
        "'forever': use today, last7days, last30days, all or START..END "
        "(ISO dates or datetimes, UTC, either side may be empty), e.g. "
        "2026-01-01..2026-02-01"
    ) in " ".join(result.output.split())


def test_feed_escapes_control_characters() -> None:
    log_activity(
        "t\x1b[2Jclear", entity=("O\nrder", 2), user_id="u\r\nx", created_at=T0
    )

    lines = run().splitlines()

    assert lines[2:] == [
        "2026-03-01 12:00:00  t\\x1b[2Jclear  O\\nrder:2  u\\r\\nx  t\\x1b[2Jclear"
    ]
