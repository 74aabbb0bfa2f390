"""Bulk logging, event_id idempotency under concurrency, and write-behind."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from collections.abc import Iterator
from typing import Any

import mongoengine as me
import pytest

from mongoengine_activity import (
    Activity,
    TrackedDocument,
    activity_dropped,
    activity_failed,
    activity_logged,
    before_log,
    configure,
    write_behind,
)
from mongoengine_activity.bulk import BulkFailure, bulk_log
from mongoengine_activity.writer import log_activity

from .conftest import DB_NAME, SERVER_URI, requires_server


class Invoice(TrackedDocument):
    number = me.StringField()
    card = me.StringField()

    meta = {"activity": {"mask_fields": ["card"], "max_per_entity": 2}}


def items(count: int, **extra: Any) -> Iterator[dict[str, Any]]:
    for number in range(count):
        yield {
            "type": "invoice_sent",
            "entity": ("Invoice", number),
            "data": {"n": number},
            **extra,
        }


def test_bulk_log_inserts_in_chunks() -> None:
    result = Activity.bulk_log(items(25), chunk_size=10)

    assert (result.inserted, result.skipped, result.failed) == (25, 0, 0)
    assert sorted(a.data["n"] for a in Activity.objects) == list(range(25))


def test_bulk_log_skips_repeated_event_ids() -> None:
    log_activity("invoice_sent", entity=("Invoice", 1), event_id="e1")
    batch = [
        {"type": "invoice_sent", "entity": ("Invoice", 1), "event_id": "e1"},
        {"type": "invoice_sent", "entity": ("Invoice", 2), "event_id": "e2"},
        {"type": "invoice_sent", "entity": ("Invoice", 2), "event_id": "e2"},
        {"type": "invoice_sent", "entity": ("Invoice", 3)},
    ]

    result = bulk_log(batch, chunk_size=2)

    assert (result.inserted, result.skipped, result.failed) == (2, 2, 0)
    assert Activity.objects.count() == 3


def test_bulk_log_reports_bad_items_and_writes_the_rest() -> None:
    batch: list[Any] = [
        {"type": "", "entity": ("Invoice", 1)},
        {"type": "ok", "entity": ("Invoice", 2)},
        {"type": "ok", "entity": ("Invoice", 3), "data": {"$bad": 1}},
        {"type": "ok", "entity": ("Invoice", 4), "colour": "red"},
        ("not", "a mapping"),
    ]

    result = bulk_log(batch)

    assert (result.inserted, result.failed) == (1, 4)
    assert [failure.index for failure in result.failures] == [0, 2, 3, 4]
    assert result.failures[0] == BulkFailure(
        0, "log_activity(): type: String should have at least 1 character"
    )
    assert "colour" in result.failures[2].reason
    assert "not a mapping" in result.failures[3].reason


def test_bulk_log_masks_like_log_activity() -> None:
    invoice = Invoice(number="1").save(track=False)
    changes = [{"path": "card", "from": None, "to": "4111"}]

    bulk_log([{"type": "invoice_paid", "entity": invoice, "changes": changes}])

    [stored] = Activity.objects
    assert stored.changes == [{"path": "card", "from": None, "to": "***"}]


def test_bulk_log_sends_signals_and_trims() -> None:
    invoice = Invoice(number="1").save(track=False)
    logged: list[str] = []

    def cancel_odd(sender: Any, activity: Activity) -> Any:
        return activity.data["n"] % 2 == 0

    def on_logged(sender: Any, activity: Activity) -> None:
        logged.append(f"{sender.__name__}:{activity.data['n']}")

    before_log.connect(cancel_odd)
    activity_logged.connect(on_logged)
    try:
        result = bulk_log(
            {"type": "invoice_viewed", "entity": invoice, "data": {"n": n}}
            for n in range(6)
        )
    finally:
        before_log.disconnect(cancel_odd)
        activity_logged.disconnect(on_logged)

    assert (result.inserted, result.dropped) == (3, 3)
    assert logged == ["Invoice:0", "Invoice:2", "Invoice:4"]
    assert sorted(a.data["n"] for a in Activity.objects) == [2, 4]


def test_bulk_log_reports_insert_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    failed: list[str] = []

    def on_failed(sender: Any, activity: Activity, error: Exception) -> None:
        failed.append(type(error).__name__)

    collection = Activity._get_collection()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("network down")

    monkeypatch.setattr(type(collection), "insert_many", broken)
    activity_failed.connect(on_failed)
    try:
        result = bulk_log(items(3))
    finally:
        activity_failed.disconnect(on_failed)

    assert (result.inserted, result.failed) == (0, 3)
    assert result.failures[0].reason == "ConnectionError: network down"
    assert failed == ["ConnectionError"] * 3


def test_bulk_log_reads_a_generator_one_chunk_at_a_time() -> None:
    pulled: list[int] = []

    def generate() -> Iterator[dict[str, Any]]:
        for number in range(10):
            pulled.append(number)
            yield {"type": "t", "entity": ("Invoice", number)}

    seen_when_logged: list[int] = []

    def on_logged(sender: Any, activity: Activity) -> None:
        seen_when_logged.append(len(pulled))

    activity_logged.connect(on_logged)
    try:
        bulk_log(generate(), chunk_size=4)
    finally:
        activity_logged.disconnect(on_logged)

    assert seen_when_logged == [4] * 4 + [8] * 4 + [10] * 2


@pytest.mark.parametrize("size", [0, -1, None, 2.5, True], ids=repr)
def test_bulk_log_rejects_a_bad_chunk_size(size: Any) -> None:
    with pytest.raises(
        ValueError, match=rf"chunk_size must be a positive integer, not {size!r}"
    ):
        bulk_log([], chunk_size=size)


# --- the same event_id from many writers


def _log_once_in_a_process(
    db: str, event_id: str, start: Any
) -> None:  # pragma: no cover
    # Runs in a spawned process, which draws its own DB_NAME: take the parent's.
    me.connect(db=db, host=SERVER_URI, uuidRepresentation="standard")
    Activity._get_collection()
    start.wait(30)
    log_activity("invoice_sent", entity=("Invoice", 1), event_id=event_id)


@requires_server
def test_processes_logging_the_same_event_id_store_it_once() -> None:
    Activity.ensure_indexes()
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_log_once_in_a_process, args=(DB_NAME, "shared", start))
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert Activity.objects(event_id="shared").count() == 1


def test_threads_logging_the_same_event_id_store_it_once() -> None:
    # mongomock runs in this process, so threads race on its unique index
    # instead of processes; with MONGODB_URI the test above uses processes.
    start = threading.Barrier(8)
    returned: list[Any] = []

    def worker() -> None:
        start.wait()
        returned.append(
            log_activity("invoice_sent", entity=("Invoice", 1), event_id="shared")
        )

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [stored] = Activity.objects(event_id="shared")
    assert {activity.id for activity in returned} == {stored.id}


# --- write-behind


@pytest.fixture
def behind() -> Iterator[write_behind.WriteBehind]:
    queue = write_behind.enable_write_behind(batch_size=50, interval=0.01)
    yield queue
    write_behind.disable_write_behind(timeout=30)


def test_default_is_synchronous() -> None:
    assert write_behind.pending() == 0
    assert write_behind.flush(0) is True


def test_write_behind_queues_and_flushes(behind: write_behind.WriteBehind) -> None:
    invoice = Invoice(number="1").save()
    for number in range(20):
        log_activity("invoice_viewed", entity=("Invoice", number))

    assert write_behind.flush(timeout=30) is True
    assert write_behind.pending() == 0
    assert Activity.objects.count() == 21
    assert Activity.objects(type="invoice_created").first().entity.id == invoice.pk


def test_write_behind_returns_the_activity_with_its_id(
    behind: write_behind.WriteBehind,
) -> None:
    activity = log_activity("invoice_viewed", entity=("Invoice", 1))
    write_behind.flush(timeout=30)

    assert activity is not None
    assert Activity.objects.get().id == activity.id


def test_write_behind_sends_logged_after_the_insert(
    behind: write_behind.WriteBehind,
) -> None:
    logged = threading.Event()
    stored: list[int] = []

    def on_logged(sender: Any, activity: Activity) -> None:
        stored.append(Activity.objects(id=activity.id).count())
        logged.set()

    activity_logged.connect(on_logged)
    try:
        log_activity("invoice_viewed", entity=("Invoice", 1))
        write_behind.flush(timeout=30)
    finally:
        activity_logged.disconnect(on_logged)

    assert logged.is_set()
    assert stored == [1]


def test_write_behind_when_full_drops_with_a_signal() -> None:
    dropped: list[str] = []

    def on_dropped(sender: Any, activity: Activity, reason: str) -> None:
        dropped.append(reason)

    gate = threading.Event()
    original = write_behind._write

    def slow(batch: Any) -> None:
        gate.wait(5)
        original(batch)

    activity_dropped.connect(on_dropped)
    write_behind._write = slow  # type: ignore[assignment]
    try:
        write_behind.enable_write_behind(
            max_queue=2, batch_size=1, interval=0.01, when_full="drop"
        )
        results = [
            log_activity("invoice_viewed", entity=("Invoice", n)) for n in range(8)
        ]
        gate.set()
        write_behind.flush(timeout=30)
    finally:
        write_behind._write = original  # type: ignore[assignment]
        write_behind.disable_write_behind(timeout=30)
        activity_dropped.disconnect(on_dropped)

    stored = Activity.objects.count()
    assert stored + len(dropped) == 8
    assert set(dropped) == {"queue_full"}
    assert sum(result is None for result in results) == len(dropped) >= 5


def test_write_behind_when_full_blocks_and_loses_nothing() -> None:
    write_behind.enable_write_behind(max_queue=3, batch_size=2, interval=0.01)
    try:
        for number in range(30):
            log_activity("invoice_viewed", entity=("Invoice", number))
        assert write_behind.flush(timeout=30)
    finally:
        write_behind.disable_write_behind(timeout=30)

    assert Activity.objects.count() == 30


def test_write_behind_reports_failed_inserts(
    behind: write_behind.WriteBehind, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(on_error="raise")
    errors: list[str] = []

    def on_failed(sender: Any, activity: Activity, error: Exception) -> None:
        errors.append(str(error))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("network down")

    monkeypatch.setattr(type(Activity._get_collection()), "insert_many", broken)
    activity_failed.connect(on_failed)
    try:
        log_activity("invoice_viewed", entity=("Invoice", 1))
        write_behind.flush(timeout=30)
    finally:
        activity_failed.disconnect(on_failed)

    assert errors == ["network down"]


def test_write_behind_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="when_full"):
        write_behind.WriteBehind(when_full="wait")  # type: ignore[arg-type]


def test_created_at_is_set_when_queued(behind: write_behind.WriteBehind) -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5)
    log_activity("invoice_viewed", entity=("Invoice", 1), created_at=at)
    write_behind.flush(timeout=30)

    assert Activity.objects.get().created_at == at


def test_signed_activities_are_chained_one_by_one() -> None:
    configure(signing_keys={"k1": b"secret"}, signing_key_id="k1", signing=True)

    result = bulk_log(items(3), chunk_size=2)
    write_behind.enable_write_behind(batch_size=50, interval=0.01)
    try:
        log_activity("invoice_viewed", entity=("Invoice", 9))
        assert write_behind.pending() == 0
    finally:
        write_behind.disable_write_behind(timeout=30)

    assert (result.inserted, result.failed) == (3, 0)
    assert [a.verify_integrity().ok for a in Activity.objects] == [True] * 4
    assert Activity.objects.verify_chain().ok
    assert Activity.objects.count() == 4


def test_a_raising_receiver_never_makes_bulk_log_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def receiver(sender: Any, activity: Activity) -> None:
        seen.append(activity.entity.id)
        if activity.entity.id == 1:
            raise RuntimeError("receiver broke")

    items = [
        {"type": "paid", "entity": ("Order", n), "on_error": "raise"} for n in range(3)
    ]
    with activity_logged.connected_to(receiver):
        result = bulk_log(items)

    assert (result.inserted, result.failed) == (3, 0)
    assert seen == [0, 1, 2]
    assert Activity.objects.count() == 3
    assert "an activity_logged receiver raised" in caplog.text
