"""Live activity streams: in-process delivery, resume, back-pressure, polling."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from bson import ObjectId

from mongoengine_activity import (
    ALL_TENANTS,
    Activity,
    QueryError,
    TenantRequiredError,
    activity_context,
    configure,
    log_activity,
)
from mongoengine_activity.realtime import (
    ActivityStream,
    StreamEvent,
    StreamOverflow,
    activity_payload,
    create_activity_stream,
    describe_activity,
    iter_sse,
)
from mongoengine_activity.realtime.stream import open_from_request
from mongoengine_activity.signals import activity_logged
from mongoengine_activity.templates import unregister_template


def log(number: int, **values: object) -> Activity:
    activity = log_activity(
        values.pop("type", "order_shipped"),  # type: ignore[arg-type]
        entity=("Order", number),
        user_id=values.pop("user_id", "u-1"),
        data={"n": number},
    )
    assert activity is not None
    return activity


def drain(stream: ActivityStream) -> list[StreamEvent]:
    events = []
    while (event := stream.next(timeout=0)) is not None:
        events.append(event)
    return events


def numbers(events: list[StreamEvent]) -> list[int]:
    return [event.activity.data["n"] for event in events]


@pytest.fixture
def stream() -> Iterator[ActivityStream]:
    with create_activity_stream() as opened:
        yield opened


def test_logged_activities_arrive_in_order(stream: ActivityStream) -> None:
    logged = [log(n) for n in range(3)]

    events = drain(stream)

    assert [event.id for event in events] == [str(a.id) for a in logged]
    assert numbers(events) == [0, 1, 2]


def test_activities_logged_before_opening_are_not_sent() -> None:
    log(0)

    with create_activity_stream() as stream:
        log(1)
        assert numbers(drain(stream)) == [1]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"user_id": "u-2"}, [1]),
        ({"type": "order_paid"}, [2]),
        ({"types": ["order_paid", "order_shipped"]}, [0, 1, 2]),
        ({"entity_type": "Order", "entity_id": 1}, [1]),
        ({"entities": ["Payment"]}, []),
    ],
    ids=["user", "type", "types", "entity", "other-entities"],
)
def test_filters_select_activities(
    filters: dict[str, object], expected: list[int]
) -> None:
    with create_activity_stream(**filters) as stream:
        log(0)
        log(1, user_id="u-2")
        log(2, type="order_paid")

        assert numbers(drain(stream)) == expected


def test_filters_apply_to_the_replay_too() -> None:
    first = log(0, user_id="u-2")
    log(1)
    log(2, user_id="u-2")

    with create_activity_stream(user_id="u-2", last_event_id=str(first.id)) as stream:
        assert numbers(drain(stream)) == [2]


def test_an_unknown_filter_raises() -> None:
    with pytest.raises(ValueError, match="unknown filter 'colour'"):
        create_activity_stream(colour="red")


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"user_id": {"$ne": "zz"}}, "user_id must be one id"),
        ({"user_id": ["x", {"$ne": "zz"}]}, "user_id must be one id"),
        ({"entity_id": {"$gt": 0}}, "entity_id must be one id"),
        ({"type": {"$regex": "."}}, "type must be one id"),
        ({"types": ["a", {"$regex": "."}]}, "types must be one id"),
        ({"team_id": {"$exists": False}}, "team_id must be one id"),
        ({"entity_type": [["Order"]]}, "entity_type must be one id"),
    ],
    ids=[
        "operator",
        "operator-in-list",
        "gt",
        "regex",
        "regex-in-list",
        "exists",
        "nested-list",
    ],
)
def test_stream_filters_refuse_query_operators(
    filters: dict[str, object], message: str
) -> None:
    first = log(0)

    with pytest.raises(QueryError, match=message):
        create_activity_stream(last_event_id=str(first.id), **filters)


def test_a_live_entity_id_filter_tells_booleans_from_numbers() -> None:
    with create_activity_stream(entity_id=1) as stream:
        log_activity("float_one", entity=("Order", 1.0))
        log_activity("true", entity=("Order", True))
        log_activity("one", entity=("Order", 1))

        assert [event.activity.type for event in drain(stream)] == [
            "float_one",
            "one",
        ]
    with create_activity_stream(entity_id=[True]) as stream:
        log_activity("one", entity=("Order", 1))
        log_activity("true", entity=("Order", True))

        assert [event.activity.type for event in drain(stream)] == ["true"]


def test_a_bad_overflow_policy_raises() -> None:
    with pytest.raises(ValueError, match="overflow 'block' must be"):
        create_activity_stream(overflow="block")  # type: ignore[arg-type]


def test_reconnecting_with_last_event_id_replays_missed_activities_once() -> None:
    with create_activity_stream() as first:
        log(0)
        log(1)
        seen = drain(first)
    last_event_id = seen[-1].id
    log(2)
    log(3)
    log(4)

    with create_activity_stream(last_event_id=last_event_id) as second:
        log(5)
        replayed = drain(second)
        log(6)
        live = drain(second)

    assert numbers(seen) == [0, 1]
    assert numbers(replayed) == [2, 3, 4, 5]
    assert numbers(live) == [6]


def test_replay_of_a_long_gap_reads_the_log_page_by_page() -> None:
    first = log(0)
    for n in range(1, 26):
        log(n)

    with create_activity_stream(last_event_id=str(first.id), page_size=4) as stream:
        assert numbers(drain(stream)) == list(range(1, 26))


def test_resume_after_an_activity_no_longer_in_the_log() -> None:
    gone = log(0)
    Activity.objects(id=gone.id).delete()
    log(1)

    with create_activity_stream(last_event_id=str(gone.id)) as stream:
        assert numbers(drain(stream)) == [1]


def test_a_garbage_last_event_id_raises() -> None:
    with pytest.raises(ValueError, match="last_event_id 'nope' is not an activity id"):
        create_activity_stream(last_event_id="nope")


def test_endpoints_ignore_a_garbage_last_event_id() -> None:
    with open_from_request("nope", {}) as stream:
        log(0)
        assert numbers(drain(stream)) == [0]


def test_a_slow_consumer_loses_nothing_and_the_queue_stays_bounded() -> None:
    with create_activity_stream(max_queue=5, page_size=7) as stream:
        for n in range(60):
            log(n)
            assert stream.queued() <= 5

        events = drain(stream)

    assert numbers(events) == list(range(60))
    assert len({event.id for event in events}) == 60
    assert len(stream._seen) <= 4 * (5 + 7)


def test_writers_do_not_wait_for_a_slow_consumer() -> None:
    stream = create_activity_stream(max_queue=3)
    done = threading.Event()

    def writer() -> None:
        for n in range(40):
            log(n)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join(timeout=30)

    assert done.is_set()
    assert stream.queued() <= 3
    assert numbers(drain(stream)) == list(range(40))
    stream.close()


def test_drop_oldest_keeps_the_newest_and_counts_the_rest() -> None:
    with create_activity_stream(max_queue=5, overflow="drop_oldest") as stream:
        for n in range(20):
            log(n)

        assert numbers(drain(stream)) == [15, 16, 17, 18, 19]
        assert stream.dropped == 15


def test_disconnect_policy_raises_with_the_last_delivered_id() -> None:
    with create_activity_stream(max_queue=2, overflow="disconnect") as stream:
        log(0)
        delivered = stream.next(timeout=0)
        for n in range(1, 6):
            log(n)

        with pytest.raises(StreamOverflow, match="reconnect") as raised:
            stream.next(timeout=0)

    assert delivered is not None
    assert raised.value.last_event_id == delivered.id
    with create_activity_stream(last_event_id=raised.value.last_event_id) as again:
        assert numbers(drain(again)) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("earlier", "other_user"),
    [(False, False), (True, False), (True, True)],
    ids=["empty-log", "earlier-activity", "earlier-activity-out-of-scope"],
)
def test_disconnect_before_any_delivery_names_where_to_resume(
    earlier: bool, other_user: bool
) -> None:
    if earlier:
        log(100)
    if other_user:
        log(101, user_id="u-2")
    with create_activity_stream(
        user_id="u-1", max_queue=5, overflow="disconnect"
    ) as stream:
        for n in range(20):
            log(n)
        with pytest.raises(StreamOverflow, match="reconnect") as raised:
            stream.next(timeout=0)

    resume_id = raised.value.last_event_id
    expected = str(Activity.objects(data__n=100).get().id) if earlier else "0" * 24
    assert resume_id == expected
    with create_activity_stream(user_id="u-1", last_event_id=resume_id) as again:
        assert numbers(drain(again)) == list(range(20))


def test_async_disconnect_before_any_delivery_names_where_to_resume() -> None:
    async def main() -> str | None:
        async with create_activity_stream(max_queue=2, overflow="disconnect") as stream:
            for n in range(5):
                log(n)
            with pytest.raises(StreamOverflow) as raised:
                await stream.anext(timeout=1)
            return raised.value.last_event_id

    resume_id = asyncio.run(main())

    assert resume_id == "0" * 24
    with create_activity_stream(last_event_id=resume_id) as again:
        assert numbers(drain(again)) == [0, 1, 2, 3, 4]


def test_sse_ends_an_overflowed_stream_with_the_id_to_resume_from() -> None:
    stream = create_activity_stream(max_queue=2, overflow="disconnect")
    messages = iter_sse(stream, heartbeat=0.01)
    next(messages)
    for n in range(5):
        log(n)

    assert list(messages) == [f"id: {'0' * 24}\n\n"]
    assert stream.closed


def _insert_from_elsewhere(number: int, created: dt.datetime) -> ObjectId:
    inserted = Activity._get_collection().insert_one(
        {
            "userId": "u-9",
            "entity": {"type": "Order", "id": number},
            "type": "order_shipped",
            "meta": {"n": number},
            "createdAt": created,
            "changes": [],
            "context": {},
        }
    )
    return ObjectId(inserted.inserted_id)


def test_polling_sees_activities_of_other_processes_once() -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    with create_activity_stream(poll_interval=0.0) as stream:
        _insert_from_elsewhere(0, now + dt.timedelta(seconds=1))
        _insert_from_elsewhere(1, now + dt.timedelta(seconds=2))
        first = drain(stream)
        # Committed late: its createdAt is older than what was delivered.
        _insert_from_elsewhere(2, now + dt.timedelta(seconds=1, milliseconds=500))
        log(3)
        second = drain(stream)

    assert numbers(first) == [0, 1]
    assert sorted(numbers(second)) == [2, 3]


def test_a_closed_stream_stops_a_blocked_reader(stream: ActivityStream) -> None:
    timer = threading.Timer(0.05, stream.close)
    timer.start()

    assert stream.next(timeout=5) is None
    timer.join()


def test_a_closed_stream_no_longer_receives() -> None:
    stream = create_activity_stream()
    stream.close()
    log(0)

    assert stream.queued() == 0
    assert not activity_logged.receivers


def test_async_iteration_is_woken_by_writers_in_other_threads() -> None:
    async def main() -> list[int]:
        received: list[int] = []
        async with create_activity_stream() as stream:
            threading.Timer(0.02, lambda: [log(n) for n in range(3)]).start()
            async for event in stream:
                received.append(event.activity.data["n"])
                if len(received) == 3:
                    break
        return received

    assert asyncio.run(main()) == [0, 1, 2]


def test_async_next_times_out() -> None:
    async def main() -> StreamEvent | None:
        async with create_activity_stream() as stream:
            return await stream.anext(timeout=0.01)

    assert asyncio.run(main()) is None


def test_async_replay_reads_the_log() -> None:
    first = log(0)
    log(1)

    async def main() -> list[int]:
        async with create_activity_stream(last_event_id=str(first.id)) as stream:
            event = await stream.anext(timeout=1)
            assert event is not None
            return [event.activity.data["n"]]

    assert asyncio.run(main()) == [1]


def test_sse_messages_carry_the_id_and_extended_json() -> None:
    stream = create_activity_stream()
    messages = iter_sse(stream, heartbeat=0.01)
    retry = next(messages)
    heartbeat = next(messages)
    activity = log(7)
    message = next(messages)
    messages.close()

    assert retry == "retry: 3000\n\n"
    assert heartbeat == ": keep-alive\n\n"
    lines = message.splitlines()
    assert lines[0] == f"id: {activity.id}"
    assert lines[1] == "event: activity"
    assert lines[2].startswith(
        'data: {"id": "' + str(activity.id) + '", "userId": "u-1"'
    )
    assert '"createdAt": {"$date": "' in lines[2]
    assert '"message": "u-1 order_shipped Order 7"' in lines[2]
    assert message.endswith("\n\n")
    assert stream.closed


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([], "u-1 order_updated Order 1"),
        (
            [{"path": "status", "from": "new", "to": "paid"}],
            "u-1 order_updated Order 1: status new \u2192 paid",
        ),
        (
            [{"path": "note", "from": None, "to": "hi"}],
            "u-1 order_updated Order 1: note = hi",
        ),
        (
            [{"path": "note", "from": "hi", "to": None}],
            "u-1 order_updated Order 1: note removed (was hi)",
        ),
        (
            [{"path": f"f{n}", "from": 1, "to": 2} for n in range(5)],
            "u-1 order_updated Order 1: f0 1 \u2192 2, f1 1 \u2192 2, f2 1 \u2192 2"
            " (+2 more)",
        ),
    ],
    ids=["no-changes", "changed", "added", "removed", "many"],
)
def test_describe_activity_lines(
    changes: list[dict[str, object]], expected: str
) -> None:
    activity = log_activity(
        "order_updated", entity=("Order", 1), user_id="u-1", changes=changes
    )
    assert activity is not None

    assert describe_activity(activity) == expected


def test_describe_activity_of_a_system_action() -> None:
    activity = log_activity("order_created", entity=("Order", 1), user_id=None)
    assert activity is not None

    assert describe_activity(activity) == "system order_created Order 1"


def test_an_async_slow_consumer_catches_up_from_the_log() -> None:
    async def main() -> list[int]:
        async with create_activity_stream(max_queue=3, page_size=4) as stream:
            for n in range(20):
                log(n)
            assert stream.queued() <= 3
            received = []
            while (event := await stream.anext(timeout=0.05)) is not None:
                received.append(event.activity.data["n"])
            return received

    assert asyncio.run(main()) == list(range(20))


def test_async_polling_sees_activities_of_other_processes() -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    async def main() -> list[int]:
        async with create_activity_stream(poll_interval=0.01) as stream:
            _insert_from_elsewhere(0, now + dt.timedelta(seconds=1))
            event = await stream.anext(timeout=5)
            assert event is not None
            return [event.activity.data["n"]]

    assert asyncio.run(main()) == [0]


def test_a_catch_up_skips_what_was_logged_before_opening_in_the_same_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = log(0)
    monkeypatch.setattr(
        "mongoengine_activity.realtime.stream.now_ms", lambda: before.created_at
    )

    with create_activity_stream(max_queue=1) as stream:
        log(1)
        log(2)  # overflows: the stream catches up from the log

        assert numbers(drain(stream)) == [1, 2]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Order {{entity.id}} shipped by {{user_id}}", "Order 1 shipped by u-1"),
        (None, "u-1 order_shipped Order 1"),
        ("{{nothing}}", "u-1 order_shipped Order 1"),
    ],
    ids=["template", "no-template", "renders-empty"],
)
def test_describe_activity_uses_the_verbs_template(
    message: str | None, expected: str
) -> None:
    activity = log(1)
    if message is not None:
        Activity.register_template("order_shipped", message=message)
    try:
        assert describe_activity(activity) == expected
    finally:
        unregister_template("order_shipped")


def test_concurrent_writers_and_a_slow_reader_see_each_activity_once() -> None:
    # The queue overflows again and again; the remembered ids (four times
    # max_queue + page_size) cover every activity, so a writer thread that
    # stamped an activity long before inserting it is still caught up.
    stream = create_activity_stream(max_queue=5, page_size=40)
    received: list[str] = []

    def writer(offset: int) -> None:
        for n in range(offset, offset + 40):
            log(n)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads) or len(received) < 160:
        event = stream.next(timeout=0.5)
        if event is None and not any(thread.is_alive() for thread in threads):
            break
        if event is not None:
            received.append(event.id)
    for thread in threads:
        thread.join()
    stream.close()

    stored = [str(a.id) for a in Activity.objects.only("id")]
    assert len(received) == len(set(received)) == 160
    assert set(received) == set(stored)


def _log_for(tenant: str, number: int) -> None:
    with activity_context(tenant=tenant):
        log(number)


def test_a_multi_tenant_stream_needs_a_tenant_under_strict_isolation() -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")

    with pytest.raises(TenantRequiredError, match="reading activities needs a tenant"):
        create_activity_stream()


def test_a_multi_tenant_stream_sees_only_its_tenant_live_and_replayed() -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    _log_for("acme", 0)
    first = Activity._get_collection().find_one({"orgId": "acme"})
    _log_for("globex", 1)
    _log_for("acme", 2)

    with activity_context(tenant="acme"):
        stream = create_activity_stream(last_event_id=str(first["_id"]))
    with stream:
        _log_for("globex", 3)
        _log_for("acme", 4)
        assert numbers(drain(stream)) == [2, 4]

    with create_activity_stream(tenant=ALL_TENANTS) as everyone:
        _log_for("globex", 5)
        assert numbers(drain(everyone)) == [5]


def test_a_tenant_scoped_stream_receives_its_tenant_live_and_no_other() -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")

    with activity_context(tenant="acme"):
        stream = create_activity_stream()
    with stream, create_activity_stream(tenant="globex") as other:
        _log_for("globex", 1)
        _log_for("acme", 2)
        first = stream.next(timeout=0)
        _log_for("acme", 3)

        assert first is not None
        assert first.payload()["orgId"] == "acme"
        assert numbers([first, *drain(stream)]) == [2, 3]
        assert numbers(drain(other)) == [1]
    assert activity_payload(first.activity)["orgId"] == "acme"
