"""activity_context: nesting, decorators, snapshots, and filling activities."""

from __future__ import annotations

import asyncio
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mongoengine as me
import pytest
from bson import ObjectId

from mongoengine_activity import (
    Activity,
    TrackedDocument,
    ValidationError,
    activity_context,
    capture_context,
    configure,
    current_context,
    log_activity,
    run_with_context,
    tracking_disabled,
)
from mongoengine_activity.context import ContextSnapshot, deferred, tracking_enabled

from .models import Customer, Order


class Note(TrackedDocument):
    text = me.StringField()

    meta = {"collection": "context_notes"}


class TeamNote(TrackedDocument):
    text = me.StringField()
    store = me.StringField()

    meta = {"collection": "context_team_notes", "activity": {"team_field": "store"}}


class TenantNote(TrackedDocument):
    # Multi-tenancy is turned on in the test that needs it: declaring it here
    # would scope every read of the activity log in the whole test run.
    text = me.StringField()

    meta = {"collection": "context_tenant_notes"}


def stored() -> list[dict[str, object]]:
    collection = Activity._get_collection()
    return list(collection.find({}, {"_id": 0}).sort([("createdAt", 1), ("_id", 1)]))


# --- the context itself


def test_empty_context_outside_any_block() -> None:
    assert current_context() == {}


def test_keys_are_stored_under_activity_names() -> None:
    with activity_context(
        user_id=7,
        request_id="r1",
        ip="10.0.0.1",
        user_agent="curl/8",
        trace_id="t",
        tenant="acme",
        team_id="blue",
        region="eu",
    ):
        assert current_context() == {
            "user_id": 7,
            "requestId": "r1",
            "ip": "10.0.0.1",
            "userAgent": "curl/8",
            "traceId": "t",
            "tenant": "acme",
            "team_id": "blue",
            "region": "eu",
        }


def test_nesting_inner_keys_win_and_outer_comes_back() -> None:
    with activity_context(user_id=1, request_id="outer"):
        with activity_context(user_id=2, region="eu"):
            assert current_context() == {
                "user_id": 2,
                "requestId": "outer",
                "region": "eu",
            }
        assert current_context() == {"user_id": 1, "requestId": "outer"}
    assert current_context() == {}


def test_outer_context_comes_back_after_an_exception() -> None:
    with activity_context(user_id=1):
        with pytest.raises(KeyError, match="boom"), activity_context(user_id=2):
            raise KeyError("boom")
        assert current_context() == {"user_id": 1}
    assert current_context() == {}


def test_enter_returns_the_values_in_force() -> None:
    with activity_context(user_id=1), activity_context(ip="::1") as values:
        assert dict(values) == {"user_id": 1, "ip": "::1"}


def test_one_instance_nests_in_itself() -> None:
    context = activity_context(user_id=1)
    with context, activity_context(user_id=2), context:
        assert current_context() == {"user_id": 1}
    assert current_context() == {}


def test_one_instance_shared_by_threads_exits_each_entry_in_its_own_thread() -> None:
    shared = activity_context(user_id="shared")
    inside = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(number: int) -> None:
        try:
            with activity_context(request_id=str(number)), shared:
                inside.wait(timeout=5)
                assert current_context() == {
                    "requestId": str(number),
                    "user_id": "shared",
                }
            assert current_context() == {}
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_out_of_order_exit_is_refused() -> None:
    outer = activity_context(user_id=1)
    inner = activity_context(user_id=2)
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="exited out of order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert current_context() == {}


def test_decorator_on_a_function() -> None:
    @activity_context(user_id=3)
    def who() -> object:
        return current_context()["user_id"]

    assert who() == 3
    assert current_context() == {}
    assert who.__name__ == "who"


def test_decorator_resets_after_an_exception() -> None:
    @activity_context(user_id=3)
    def fail() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        fail()
    assert current_context() == {}


def test_decorator_on_a_coroutine_function() -> None:
    @activity_context(user_id=4)
    async def who() -> object:
        await asyncio.sleep(0)
        return current_context()["user_id"]

    assert asyncio.run(who()) == 4
    assert current_context() == {}


def test_decorator_refuses_generator_functions() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="cannot decorate the generator function"):
        activity_context(user_id=1)(numbers)


def test_deferred_values_are_computed_on_each_read() -> None:
    users = iter([10, 11])
    with activity_context(user_id=deferred(lambda: next(users))):
        assert current_context() == {"user_id": 10}
        assert current_context() == {"user_id": 11}


def test_a_failing_deferred_value_is_logged_and_missing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> object:
        raise LookupError("no user")

    with activity_context(user_id=deferred(broken)):
        assert current_context() == {"user_id": None}
    assert "the context value 'user_id' could not be computed" in caplog.text


# --- snapshots


def test_capture_and_run_with_context_in_a_thread_pool() -> None:
    with activity_context(user_id=5, request_id="job"):
        snapshot = capture_context()
    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = pool.submit(run_with_context, snapshot, current_context).result()
        after = pool.submit(current_context).result()
    assert seen == {"user_id": 5, "requestId": "job"}
    assert after == {}


def test_run_with_context_replaces_and_restores_the_context() -> None:
    snapshot = ContextSnapshot(values={"user_id": 1}, tracking_disabled=True)
    with activity_context(request_id="here"):
        seen = run_with_context(
            snapshot, lambda: (current_context(), tracking_enabled())
        )
        assert seen == ({"user_id": 1}, False)
        assert current_context() == {"requestId": "here"}
        assert tracking_enabled()


def test_run_with_context_restores_after_an_exception() -> None:
    def fail() -> None:
        raise ValueError("job failed")

    with pytest.raises(ValueError, match="job failed"):
        run_with_context(ContextSnapshot(values={"user_id": 1}), fail)
    assert current_context() == {}


def test_run_with_context_on_a_coroutine_function() -> None:
    async def who() -> object:
        await asyncio.sleep(0)
        return current_context()

    snapshot = ContextSnapshot(values={"user_id": 8})
    assert asyncio.run(run_with_context(snapshot, who)) == {"user_id": 8}
    assert current_context() == {}


def test_snapshot_carries_tracking_disabled() -> None:
    with tracking_disabled():
        snapshot = capture_context()
    assert snapshot.tracking_disabled is True
    assert run_with_context(snapshot, tracking_enabled) is False


def test_snapshot_computes_deferred_values_and_pickles() -> None:
    with activity_context(user_id=deferred(lambda: ObjectId("0" * 24)), ip="::1"):
        snapshot = capture_context()
    restored = pickle.loads(pickle.dumps(snapshot))
    assert restored == ContextSnapshot(
        values={"user_id": ObjectId("0" * 24), "ip": "::1"},
        tracking_disabled=False,
    )


# --- activities are filled from the context


def test_tracked_save_is_filled_from_the_context() -> None:
    with activity_context(
        user_id=9,
        request_id="req-1",
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
        trace_id="a" * 32,
        team_id="blue",
        region="eu",
    ):
        Note(text="hi").save()

    [activity] = stored()
    assert activity["userId"] == 9
    assert activity["teamId"] == "blue"
    assert activity["context"] == {
        "requestId": "req-1",
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0",
        "traceId": "a" * 32,
        "region": "eu",
    }


def test_update_and_delete_are_filled_from_the_context() -> None:
    note = Note(text="hi").save()
    with activity_context(user_id="ann", request_id="r2"):
        note.text = "ho"
        note.save()
        note.delete()

    rows = stored()
    assert [(row["type"], row["userId"], row["context"]) for row in rows] == [
        ("note_created", None, {}),
        ("note_updated", "ann", {"requestId": "r2"}),
        ("note_deleted", "ann", {"requestId": "r2"}),
    ]


def test_bulk_insert_is_filled_from_the_context() -> None:
    with activity_context(user_id="bulk", request_id="r-bulk"):
        Note.objects.insert([Note(text="a"), Note(text="b")])

    rows = stored()
    assert [(row["type"], row["userId"], row["context"]) for row in rows] == [
        ("note_created", "bulk", {"requestId": "r-bulk"}),
        ("note_created", "bulk", {"requestId": "r-bulk"}),
    ]


def test_log_activity_is_filled_from_the_context() -> None:
    with activity_context(user_id=9, request_id="r3", team_id="blue", region="eu"):
        log_activity("report_viewed", entity=("Report", 1))

    [activity] = stored()
    assert activity["userId"] == 9
    assert activity["teamId"] == "blue"
    assert activity["context"] == {"requestId": "r3", "region": "eu"}


def test_explicit_log_activity_arguments_win_over_the_context() -> None:
    with activity_context(user_id=9, request_id="r3", team_id="blue", ip="::1"):
        log_activity(
            "report_viewed",
            entity=("Report", 1),
            user_id=None,
            team_id="red",
            context={"requestId": "mine", "reason": "audit"},
        )

    [activity] = stored()
    assert activity["userId"] is None
    assert activity["teamId"] == "red"
    assert activity["context"] == {"requestId": "mine", "ip": "::1", "reason": "audit"}


def test_document_user_and_team_fields_win_over_the_context() -> None:
    with activity_context(user_id="from-context", team_id="from-context"):
        Order(placed_by="bob").save()
        TeamNote(text="a", store="oslo").save()
        TeamNote(text="b").save()

    rows = stored()
    assert [(row["userId"], row.get("teamId")) for row in rows] == [
        ("bob", "from-context"),
        ("from-context", "oslo"),
        ("from-context", "from-context"),
    ]


def test_inner_none_hides_the_outer_value() -> None:
    with activity_context(user_id=1, ip="::1"), activity_context(user_id=None, ip=None):
        Note(text="x").save()

    [activity] = stored()
    assert activity["userId"] is None
    assert activity["context"] == {}


def test_tenant_from_the_context_on_a_multi_tenant_model() -> None:
    configure(multi_tenant=True, tenant_field="organizationId")
    with activity_context(tenant="acme", user_id=1):
        note = TenantNote(text="x").save()
        log_activity("note_shared", entity=note)

    rows = stored()
    assert [row["organizationId"] for row in rows] == ["acme", "acme"]
    assert all("tenant" not in row["context"] for row in rows)


def test_deferred_user_is_asked_at_write_time() -> None:
    current = {"user": None}
    with activity_context(user_id=deferred(lambda: current["user"])):
        Note(text="before login").save()
        current["user"] = "ann"
        Note(text="after login").save()

    assert [row["userId"] for row in stored()] == [None, "ann"]


def test_a_failing_deferred_user_never_breaks_the_save(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> object:
        raise RuntimeError("session store down")

    with activity_context(user_id=deferred(broken), request_id="r"):
        note = Note(text="x").save()

    assert Note.objects(pk=note.pk).count() == 1
    [activity] = stored()
    assert activity["userId"] is None
    assert activity["context"] == {"requestId": "r"}
    assert caplog.messages == [
        "the context value 'user_id' could not be computed: RuntimeError"
    ]
    assert "session store down" not in caplog.text


# --- no leakage between threads and tasks

THREADS = 50
SAVES_PER_THREAD = 100
TASKS = 500


@pytest.fixture
def unindexed_activities() -> Iterator[None]:
    """Drop the activity indexes for a bulk test, and bring them back after.

    mongomock checks unique and TTL indexes by scanning the whole collection on
    every insert, which makes thousands of inserts quadratic (minutes instead
    of seconds); the indexes play no part in what these tests check.
    """
    Activity._get_collection().drop_indexes()
    try:
        yield
    finally:
        Activity._get_collection().delete_many({})
        Activity.ensure_indexes()


def assert_each_activity_has_its_own_request(rows: list[dict[str, object]]) -> None:
    for row in rows:
        context = row["context"]
        assert isinstance(context, dict)
        number = row["userId"]
        assert context == {
            "requestId": f"req-{number}",
            "ip": f"10.0.{number // 256}.{number % 256}",  # type: ignore[operator]
        }


@pytest.mark.slow
@pytest.mark.usefixtures("unindexed_activities")
def test_no_leakage_between_many_threads() -> None:
    start = threading.Barrier(THREADS)

    def request(number: int) -> None:
        start.wait(timeout=30)
        ip = f"10.0.{number // 256}.{number % 256}"
        with activity_context(user_id=number, request_id=f"req-{number}", ip=ip):
            for index in range(SAVES_PER_THREAD):
                if index % 10 == 0:
                    log_activity("note_viewed", entity=("Note", index))
                else:
                    Note(text=str(index)).save()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(request, range(THREADS)))

    rows = stored()
    assert len(rows) == THREADS * SAVES_PER_THREAD
    assert_each_activity_has_its_own_request(rows)
    counts: dict[object, int] = {}
    for row in rows:
        counts[row["userId"]] = counts.get(row["userId"], 0) + 1
    assert counts == dict.fromkeys(range(THREADS), SAVES_PER_THREAD)
    assert current_context() == {}


@pytest.mark.slow
@pytest.mark.usefixtures("unindexed_activities")
def test_no_leakage_between_many_asyncio_tasks() -> None:
    async def request(number: int) -> None:
        ip = f"10.0.{number // 256}.{number % 256}"
        with activity_context(user_id=number, request_id=f"req-{number}", ip=ip):
            await asyncio.sleep(0)
            Note(text="first").save()
            await asyncio.sleep(0)
            with activity_context(region="eu"):
                await asyncio.sleep(0)
            log_activity("note_viewed", entity=("Note", number))

    async def main() -> None:
        await asyncio.gather(*(request(number) for number in range(TASKS)))

    asyncio.run(main())

    rows = stored()
    assert len(rows) == 2 * TASKS
    assert_each_activity_has_its_own_request(rows)
    assert sorted(row["userId"] for row in rows) == sorted(  # type: ignore[type-var]
        [*range(TASKS), *range(TASKS)]
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"foo": object()},
            "foo",
            "activity_context(): foo: cannot be stored in MongoDB: Invalid "
            "document: cannot encode object",
        ),
        (
            {"user_id": 2**70},
            "user_id",
            "activity_context(): user_id: cannot be stored in MongoDB: MongoDB "
            "can only handle up to 8-byte ints",
        ),
        (
            {"$x": 1},
            "$x",
            "activity_context(): key '$x' may not start with '$' or contain '.' or NUL",
        ),
        (
            {"a.b": 2},
            "a.b",
            "activity_context(): key 'a.b' may not start with '$' or contain '.' "
            "or NUL",
        ),
        (
            {"a\x00": 2},
            "a\x00",
            "activity_context(): key 'a\\x00' may not start with '$' or contain "
            "'.' or NUL",
        ),
    ],
    ids=["unstorable", "huge-int", "dollar", "dotted", "nul"],
)
def test_bad_context_values_are_refused_at_once(
    values: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        activity_context(**values)

    assert str(raised.value).startswith(message)
    assert raised.value.field == field


def test_deferred_and_document_values_are_not_checked_when_set() -> None:
    customer = Customer(name="Ann").save()
    with activity_context(user_id=customer, later=deferred(lambda: "x")):
        Order(status="new").save()

    stored = Activity.objects.get(type="order_created")
    assert stored.user_id == customer.pk
    assert stored.context == {"later": "x"}
