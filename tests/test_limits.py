"""Dedup windows and rate limits (step 6 of the write path)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import mongoengine as me
import pytest

from mongoengine_activity import (
    ALL_TENANTS,
    Activity,
    TrackedDocument,
    activity_context,
    activity_dropped,
    configure,
)
from mongoengine_activity.limits import (
    Limiter,
    MemoryLimiter,
    MongoLimiter,
    current_limiter,
    use_limiter,
)
from mongoengine_activity.writer import log_activity

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class Ticket(TrackedDocument):
    title = me.StringField()

    meta = {"activity": {"rate_limit": {"max_per_minute": 3, "burst_window": "1m"}}}


class Note(TrackedDocument):
    text = me.StringField()

    meta = {"activity": {"dedup_window": "10s"}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "mongo"])
def limiter(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Limiter]:
    chosen: Limiter = (
        MemoryLimiter(clock=clock)
        if request.param == "memory"
        else MongoLimiter(clock=clock)
    )
    previous = use_limiter(chosen)
    yield chosen
    use_limiter(previous)


@pytest.fixture
def dropped() -> Iterator[list[tuple[Any, str]]]:
    seen: list[tuple[Any, str]] = []

    def receiver(sender: Any, activity: Activity, reason: str) -> None:
        seen.append((sender, reason))

    activity_dropped.connect(receiver)
    yield seen
    activity_dropped.disconnect(receiver)


def test_the_default_limiter_is_in_process() -> None:
    assert isinstance(current_limiter(), MemoryLimiter)


@pytest.mark.parametrize(
    ("writes", "stored"),
    [(3, 3), (4, 3), (10, 3)],
    ids=["exactly-max", "max-plus-one", "far-over"],
)
def test_rate_limit_boundaries(
    limiter: Limiter,
    dropped: list[tuple[Any, str]],
    writes: int,
    stored: int,
) -> None:
    ticket = Ticket(title="t").save(track=False)
    for number in range(writes):
        log_activity("ticket_viewed", entity=ticket, user_id="u1", data={"n": number})

    assert Activity.objects.count() == stored
    assert dropped == [(Ticket, "rate_limit")] * (writes - stored)


def test_rate_limit_window_rolls_over(
    limiter: Limiter, clock: FakeClock, dropped: list[tuple[Any, str]]
) -> None:
    ticket = Ticket(title="t").save(track=False)
    for _ in range(4):
        log_activity("ticket_viewed", entity=ticket, user_id="u1")
    clock.advance(seconds=59, milliseconds=999)
    log_activity("ticket_viewed", entity=ticket, user_id="u1")
    clock.advance(milliseconds=1)
    for _ in range(4):
        log_activity("ticket_viewed", entity=ticket, user_id="u1")

    assert Activity.objects.count() == 6
    assert len(dropped) == 3


def test_rate_limit_is_per_user_then_per_entity(limiter: Limiter) -> None:
    ticket = Ticket(title="t").save(track=False)
    for user in ("u1", "u2"):
        for _ in range(4):
            log_activity("ticket_viewed", entity=ticket, user_id=user)
    other = Ticket(title="o").save(track=False)
    for _ in range(4):
        log_activity("ticket_viewed", entity=other, user_id=None)

    assert Activity.objects(user_id="u1").count() == 3
    assert Activity.objects(user_id="u2").count() == 3
    assert Activity.objects(user_id=None).count() == 3


def test_automatic_tracking_is_rate_limited(limiter: Limiter) -> None:
    ticket = Ticket(title="0").save()
    for number in range(1, 6):
        ticket.title = str(number)
        ticket.save()

    assert Activity.objects.count() == 3


def test_dropped_activities_are_logged_without_values(
    limiter: Limiter, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = Ticket(title="t").save(track=False)
    with caplog.at_level(logging.WARNING, logger="mongoengine_activity"):
        for _ in range(4):
            log_activity("ticket_viewed", entity=ticket, user_id="u1", data={"s": "x1"})

    [record] = caplog.records
    assert (
        record.getMessage() == "activity ticket_viewed for Ticket dropped: rate_limit"
    )


def test_concurrent_threads_never_exceed_the_limit(
    limiter: Limiter, dropped: list[tuple[Any, str]]
) -> None:
    ticket = Ticket(title="t").save(track=False)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            log_activity("ticket_viewed", entity=ticket, user_id="u1")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Activity.objects.count() == 3
    assert len(dropped) == 8 * 5 - 3


def test_dedup_writes_the_same_activity_once_per_window(
    limiter: Limiter, clock: FakeClock, dropped: list[tuple[Any, str]]
) -> None:
    note = Note(text="n").save(track=False)
    for _ in range(3):
        log_activity("note_viewed", entity=note, user_id="u1")
    log_activity("note_viewed", entity=note, user_id="u2")
    log_activity("note_pinned", entity=note, user_id="u1")
    clock.advance(seconds=9)
    log_activity("note_viewed", entity=note, user_id="u1")
    clock.advance(seconds=1)
    log_activity("note_viewed", entity=note, user_id="u1")

    assert [(a.type, a.user_id) for a in Activity.objects.order_by("id")] == [
        ("note_viewed", "u1"),
        ("note_viewed", "u2"),
        ("note_pinned", "u1"),
        ("note_viewed", "u1"),
    ]
    assert dropped == [(Note, "dedup")] * 3


def test_dedup_compares_changes(limiter: Limiter) -> None:
    note = Note(text="a").save()
    note.text = "b"
    note.save()
    note.text = "a"
    note.save()
    note.text = "b"
    note.save()

    assert [a.type for a in Activity.objects.order_by("id")] == [
        "note_created",
        "note_updated",
        "note_updated",
    ]


def test_mongo_limiter_keeps_state_in_a_helper_collection(clock: FakeClock) -> None:
    previous = use_limiter(MongoLimiter(clock=clock))
    try:
        ticket = Ticket(title="t").save(track=False)
        log_activity("ticket_viewed", entity=ticket, user_id="u1")
    finally:
        use_limiter(previous)

    helper = Activity._get_db()["activities_limits"]
    [state] = helper.find()
    assert state["used"] == 1
    assert state["until"] == T0 + dt.timedelta(minutes=1)
    assert "expiresAt_1" in helper.index_information()


def test_a_repeated_event_id_does_not_use_the_rate_limit(limiter: Limiter) -> None:
    ticket = Ticket(title="t").save(track=False)
    for _ in range(5):
        log_activity("ticket_viewed", entity=ticket, user_id="u1", event_id="once")

    assert Activity.objects.count() == 1
    log_activity("ticket_viewed", entity=ticket, user_id="u1")
    log_activity("ticket_viewed", entity=ticket, user_id="u1")
    assert Activity.objects.count() == 3


def test_tenants_never_share_a_rate_limit_or_a_dedup_window(limiter: Limiter) -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    ticket = Ticket(title="t")
    note = Note(text="n")
    for tenant in ("acme", "globex"):
        with activity_context(tenant=tenant, user_id="same-user"):
            ticket.save(track=False)
            note.save(track=False)
            for _ in range(4):
                log_activity("ticket_viewed", entity=ticket)
            for _ in range(2):
                log_activity("note_viewed", entity=note)

    with activity_context(tenant=ALL_TENANTS):
        stored = [(a.tenant, a.type) for a in Activity.objects]
    assert sorted(stored) == sorted(
        [(tenant, "ticket_viewed") for tenant in ("acme", "globex") for _ in range(3)]
        + [("acme", "note_viewed"), ("globex", "note_viewed")]
    )
