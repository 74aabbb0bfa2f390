"""``mongoengine-activity tail``."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from mongoengine_activity import log_activity
from mongoengine_activity.cli import _tail, main

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(autouse=True)
def same_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tail, "connect", lambda uri, db: None)


def log(n: int, verb: str = "order_updated") -> None:
    log_activity(
        verb,
        entity=("Order", n),
        user_id="ann",
        created_at=T0 + dt.timedelta(seconds=n),
        on_error="raise",
    )


def types(output: str) -> list[str]:
    return [line.split()[2] + "/" + line.split()[3] for line in output.splitlines()]


def test_tail_once_prints_the_last_ones_oldest_first() -> None:
    for n in range(5):
        log(n)

    result = CliRunner().invoke(main, ["tail", "--once", "--last", "3"])

    assert result.exit_code == 0, result.output
    assert types(result.output) == [
        "order_updated/Order:2",
        "order_updated/Order:3",
        "order_updated/Order:4",
    ]
    assert result.output.splitlines()[0] == (
        "2026-03-01 12:00:02  order_updated  Order:2  ann  order_updated"
    )


def test_tail_follows_new_activities(monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        log(n)
    polls: list[float] = []

    def next_poll(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            log(10, "order_shipped")
            log(11, "order_shipped")
        elif len(polls) == 3:
            log(12, "order_deleted")

    monkeypatch.setattr(_tail, "_sleep", next_poll)
    result = CliRunner().invoke(
        main, ["tail", "--last", "1", "--limit", "4", "--interval", "0.5"]
    )

    assert result.exit_code == 0, result.output
    assert types(result.output) == [
        "order_updated/Order:2",
        "order_shipped/Order:10",
        "order_shipped/Order:11",
        "order_deleted/Order:12",
    ]
    assert polls == [0.5, 0.5, 0.5]


def test_tail_with_no_recent_shows_only_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log(0)
    monkeypatch.setattr(_tail, "_sleep", lambda seconds: log(5, "order_shipped"))

    result = CliRunner().invoke(main, ["tail", "--last", "0", "--limit", "1"])

    assert types(result.output) == ["order_shipped/Order:5"]


def test_tail_of_an_empty_log_starts_from_the_beginning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_tail, "_sleep", lambda seconds: log(1))

    result = CliRunner().invoke(
        main, ["tail", "--limit", "1", "--type", "order_updated"]
    )

    assert types(result.output) == ["order_updated/Order:1"]


def test_tail_escapes_control_characters() -> None:
    log_activity(
        "t\x1b[2Jclear", entity=("O\nrder", 2), user_id="u\r\nx", created_at=T0
    )

    result = CliRunner().invoke(main, ["tail", "--once"])

    assert result.output == (
        "2026-03-01 12:00:00  t\\x1b[2Jclear  O\\nrder:2  u\\r\\nx  t\\x1b[2Jclear\n"
    )
