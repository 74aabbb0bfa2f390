"""Keyset pagination: ``page(after=cursor, limit=...)``."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
from bson import ObjectId

import mongoengine_activity as ma
from mongoengine_activity import Activity, CursorError, Page, QueryError, log_activity
from mongoengine_activity import pages as pages_module

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def log(seconds: float = 0, **kwargs: Any) -> Activity:
    kwargs.setdefault("entity", ("Order", 1))
    activity = log_activity(
        kwargs.pop("type", "order_updated"),
        created_at=T0 + dt.timedelta(seconds=seconds),
        on_error="raise",
        **kwargs,
    )
    assert activity is not None
    return activity


def pks(page: Page[Any]) -> list[Any]:
    return [item["_id"] if isinstance(item, dict) else item.pk for item in page]


def all_pages(queryset: Any, limit: int) -> list[list[Any]]:
    found = []
    cursor = None
    while True:
        page = queryset.page(cursor, limit=limit)
        found.append(pks(page))
        cursor = page.next_cursor
        if cursor is None:
            return found


def feed_order(activities: list[Activity]) -> list[Any]:
    ordered = sorted(activities, key=lambda a: (a.created_at, a.pk), reverse=True)
    return [activity.pk for activity in ordered]


def test_pages_split_equal_timestamps_exactly() -> None:
    logged = [log(0, entity=("Order", n)) for n in range(10)]
    expected = feed_order(logged)

    assert all_pages(Activity.objects, 3) == [
        expected[0:3],
        expected[3:6],
        expected[6:9],
        expected[9:10],
    ]


def test_a_full_last_page_has_no_next_cursor() -> None:
    logged = [log(n % 2) for n in range(4)]

    first = Activity.objects.page(limit=4)

    assert pks(first) == feed_order(logged)
    assert first.next_cursor is None
    assert len(first) == 4


def test_empty_collection_gives_one_empty_page() -> None:
    page = Activity.objects.page()

    assert page == Page(items=[], next_cursor=None)


def test_new_activities_between_fetches_cause_no_duplicates_or_gaps() -> None:
    # Three per timestamp, so page boundaries fall inside a millisecond.
    logged = [log(n // 3, entity=("Order", n)) for n in range(14)]
    expected = feed_order(logged)
    seen: list[Any] = []
    cursor = None
    round_ = 0
    while True:
        page = Activity.objects.page(cursor, limit=4)
        seen += pks(page)
        cursor = page.next_cursor
        if cursor is None:
            break
        round_ += 1
        # Newer activities arrive, some in the very millisecond of the cursor
        # item (their ObjectIds are larger, so they sort before it).
        last = page.items[-1]
        log((last.created_at - T0).total_seconds(), type="late")
        log(100 + round_, type="newest")

    assert seen == expected
    assert len(set(seen)) == len(seen)


def test_pages_keep_the_feed_filter_and_replace_its_limit() -> None:
    mine = [log(n, user_id="ann") for n in range(5)]
    log(2, user_id="bob")

    pages = all_pages(Activity.objects.user_feed("ann", limit=50), 2)

    assert pages == [
        feed_order(mine)[0:2],
        feed_order(mine)[2:4],
        feed_order(mine)[4:5],
    ]


def test_pages_of_plain_dicts() -> None:
    logged = [log(n) for n in range(3)]

    page = Activity.objects.global_feed().as_dicts().page(limit=2)
    rest = Activity.objects.as_dicts().page(page.next_cursor, limit=2)

    assert all(isinstance(item, dict) for item in page)
    assert pks(page) + pks(rest) == feed_order(logged)


def _valid_cursor() -> str:
    for n in range(3):
        log(n)
    cursor = Activity.objects.page(limit=1).next_cursor
    assert cursor is not None
    return cursor


def _flip(cursor: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (lambda c: _flip(c, 12), "altered or signed with another key"),
        (lambda c: _flip(c, -1), "altered or signed with another key"),
        (lambda c: c[:-4], "altered or signed with another key"),
        (lambda c: c + "AAAA", "altered or signed with another key"),
        (lambda c: "garbage", "not a cursor"),
        (lambda c: "!!!!", "not a cursor"),
        (lambda c: "", "invalid page cursor ''"),
        (lambda c: _flip(c, 0), "not a cursor"),
    ],
    ids=[
        "payload-bit",
        "tag-bit",
        "truncated",
        "extended",
        "garbage",
        "not-base64",
        "empty",
        "version",
    ],
)
def test_tampered_or_garbage_cursors_raise(tamper: Any, match: str) -> None:
    cursor = tamper(_valid_cursor())

    with pytest.raises(CursorError, match=match):
        Activity.objects.page(cursor)


def test_cursor_errors_are_value_errors() -> None:
    assert issubclass(CursorError, QueryError)
    assert issubclass(CursorError, ValueError)
    assert issubclass(CursorError, ma.ActivityError)


def test_a_cursor_signed_with_another_key_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cursor = _valid_cursor()
    monkeypatch.setattr(pages_module, "_PROCESS_KEY", b"another process" * 2)

    with pytest.raises(CursorError, match=r"configure\(cursor_key=\.\.\.\)"):
        Activity.objects.page(cursor)


def test_a_configured_key_makes_cursors_work_across_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ma.configure(cursor_key=b"shared secret")
    cursor = _valid_cursor()
    monkeypatch.setattr(pages_module, "_PROCESS_KEY", b"another process" * 2)

    assert len(Activity.objects.page(cursor, limit=5)) == 2


def test_cursor_round_trips_any_id_type() -> None:
    at = (dt.datetime(2026, 1, 2, 3, 4, 5, 6000), ObjectId())

    assert pages_module.decode_cursor(pages_module.encode_cursor(at)) == at
    assert pages_module.decode_cursor(pages_module.encode_cursor((T0, 7))) == (T0, 7)


@pytest.mark.parametrize(
    "limit", [0, -1, True, 2.5], ids=["zero", "neg", "bool", "float"]
)
def test_bad_page_limits_raise(limit: Any) -> None:
    with pytest.raises(QueryError, match="limit must be a positive integer"):
        Activity.objects.page(limit=limit)


def test_newer_than_follows_oldest_first() -> None:
    logged = [log(n // 2, entity=("Order", n)) for n in range(5)]
    ordered = list(reversed(feed_order(logged)))
    start = pages_module.position(Activity.objects.get(pk=ordered[1]))

    newer = pages_module.newer_than(Activity.objects, start)

    assert [a.pk for a in newer] == ordered[2:]
    assert [a.pk for a in pages_module.newer_than(Activity.objects, None)] == ordered
