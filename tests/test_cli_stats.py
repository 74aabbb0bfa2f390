"""``mongoengine-activity stats``."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from mongoengine_activity import log_activity
from mongoengine_activity.cli import _stats, main

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(autouse=True)
def same_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stats, "connect", lambda uri, db: None)


@pytest.fixture
def logged() -> None:
    rows = [
        ("order_created", ("Order", 1), "ann"),
        ("order_updated", ("Order", 1), "bob"),
        ("order_updated", ("Order", 2), "ann"),
        ("payment_made", ("Payment", 9), None),
    ]
    for n, (verb, entity, user) in enumerate(rows):
        log_activity(
            verb,
            entity=entity,
            user_id=user,
            created_at=T0 + dt.timedelta(hours=n * 10),
            on_error="raise",
        )


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["stats", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_stats_prints_a_table(logged: None) -> None:
    assert run("--range", "all").splitlines() == [
        "type           count  unique_users  unique_entities",
        "-------------  -----  ------------  ---------------",
        "order_updated      2             2                2",
        "order_created      1             1                1",
        "payment_made       1             0                1",
    ]


def test_stats_by_day_with_chosen_metrics(logged: None) -> None:
    output = run("--by", "day", "--range", "2026-03-01..", "--metric", "count")

    assert output.splitlines() == [
        "day         count",
        "----------  -----",
        "2026-03-01      2",
        "2026-03-02      2",
    ]


def test_stats_on_an_empty_range(logged: None) -> None:
    assert run("--range", "..2026-01-01") == "No activities in that range.\n"


def test_stats_rejects_unknown_groups() -> None:
    result = CliRunner().invoke(main, ["stats", "--by", "month"])

    assert result.exit_code == 2
    assert "'month' is not one of" in result.output


def test_stats_shows_the_type_of_ids_that_would_look_alike() -> None:
    for user in (123, "123", 123):
        log_activity("order_created", entity=("Order", 1), user_id=user, created_at=T0)

    assert run("--by", "user", "--range", "all", "--metric", "count").splitlines() == [
        "user   count",
        "-----  -----",
        "123        2",
        "'123'      1",
    ]
