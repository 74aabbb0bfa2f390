"""The blinker signals: before_log, activity_logged, activity_failed."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from typing import Any

import bson
import pytest

import mongoengine_activity as ma
from mongoengine_activity import Activity, log_activity

from .models import Customer, Order


def test_before_log_can_modify_the_activity() -> None:
    def enrich(sender: Any, activity: Activity) -> None:
        activity.data = {**activity.data, "source": "api"}

    with ma.before_log.connected_to(enrich, sender=Order):
        Order(status="new").save()
        log_activity("other", entity=("Thing", 1))

    stored = {a.type: a.data for a in Activity.objects}
    assert stored == {"order_created": {"source": "api"}, "other": {}}


def test_before_log_returning_false_cancels() -> None:
    def veto(sender: Any, activity: Activity) -> bool:
        return activity.type != "order_created"

    with ma.before_log.connected_to(veto):
        Order(status="new").save()
        result = log_activity("kept", entity=("Thing", 1))

    assert [a.type for a in Activity.objects] == ["kept"]
    assert result is not None and result.type == "kept"


def test_before_log_sees_masked_values_only() -> None:
    seen: list[Any] = []

    def spy(sender: Any, activity: Activity) -> None:
        seen.append([c for c in activity.changes if c["path"] == "card"])

    with ma.before_log.connected_to(spy):
        Order(card={"number": "4111111111111111"}).save()

    assert seen == [[{"path": "card", "from": None, "to": {"number": "***"}}]]


def test_activity_logged_receives_the_stored_activity() -> None:
    received: list[tuple[Any, Any, Any]] = []

    def receiver(sender: Any, activity: Activity) -> None:
        received.append((sender, activity.pk, activity.type))

    with ma.activity_logged.connected_to(receiver):
        customer = Customer(name="Ann").save()
        log_activity("customer_called", entity=("Customer", customer.pk))

    stored = list(Activity.objects.order_by("created_at", "id"))
    assert received == [
        (Customer, stored[0].pk, "customer_created"),
        (Activity, stored[1].pk, "customer_called"),
    ]


def test_receiver_saving_a_tracked_document_does_not_recurse() -> None:
    def audit(sender: Any, activity: Activity) -> None:
        Customer(name=f"echo of {activity.type}").save()

    with ma.activity_logged.connected_to(audit):
        Customer(name="Ann").save()

    assert Customer.objects.count() == 2
    assert [a.type for a in Activity.objects] == ["customer_created"]


def test_async_receiver_runs_without_a_loop() -> None:
    received: list[str] = []

    async def receiver(sender: Any, activity: Activity) -> None:
        await asyncio.sleep(0)
        received.append(activity.type)

    with ma.activity_logged.connected_to(receiver):
        log_activity("async_seen", entity=("Thing", 1))

    assert received == ["async_seen"]


def test_async_receiver_is_scheduled_inside_a_running_loop() -> None:
    received: list[str] = []

    async def receiver(sender: Any, activity: Activity) -> None:
        received.append(activity.type)

    async def main() -> None:
        with ma.activity_logged.connected_to(receiver):
            log_activity("from_loop", entity=("Thing", 1))
            assert received == []
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert received == ["from_loop"]


def test_receiver_error_is_reported_as_a_failure() -> None:
    failures: list[str] = []

    def broken(sender: Any, activity: Activity) -> None:
        raise KeyError("boom")

    def on_failed(sender: Any, activity: Activity, error: Exception) -> None:
        failures.append(type(error).__name__)

    with ma.before_log.connected_to(broken), ma.activity_failed.connected_to(on_failed):
        order = Order(status="new").save()

    assert order.pk is not None
    assert failures == ["KeyError"]
    assert Activity.objects.count() == 0


def test_activity_logged_receiver_error_does_not_undo_the_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures: list[str] = []

    def broken(sender: Any, activity: Activity) -> None:
        raise KeyError("boom")

    def on_failed(sender: Any, **kwargs: Any) -> None:
        failures.append("failed")

    with (
        ma.activity_logged.connected_to(broken),
        ma.activity_failed.connected_to(on_failed),
    ):
        result = log_activity("kept", entity=("Thing", 1))

    assert result is not None and result.type == "kept"
    assert Activity.objects.count() == 1
    assert failures == []
    assert "an activity_logged receiver raised" in caplog.text


def test_activity_logged_receiver_error_raises_with_on_error_raise() -> None:
    def broken(sender: Any, activity: Activity) -> None:
        raise KeyError("boom")

    with ma.activity_logged.connected_to(broken), pytest.raises(KeyError):
        log_activity("kept", entity=("Thing", 1), on_error="raise")

    assert Activity.objects.count() == 1


def test_task_started_by_a_receiver_is_tracked() -> None:
    started: list[asyncio.Task[None]] = []

    async def later() -> None:
        await asyncio.sleep(0)
        Customer(name="from task").save()

    def receiver(sender: Any, activity: Activity) -> None:
        Customer(name="from receiver").save()
        started.append(asyncio.get_running_loop().create_task(later()))

    async def main() -> None:
        with ma.activity_logged.connected_to(receiver, sender=Order):
            Order(status="new").save()
            await asyncio.gather(*started)

    asyncio.run(main())
    assert sorted(a.type for a in Activity.objects) == [
        "customer_created",
        "order_created",
    ]
    assert Activity.objects(type="customer_created").get().entity.id == (
        Customer.objects.get(name="from task").pk
    )


def test_thread_started_by_a_receiver_with_its_context_is_tracked() -> None:
    threads: list[threading.Thread] = []

    def receiver(sender: Any, activity: Activity) -> None:
        context = contextvars.copy_context()
        work = functools.partial(Customer(name="from thread").save)
        thread = threading.Thread(target=context.run, args=(work,))
        thread.start()
        threads.append(thread)

    with ma.activity_logged.connected_to(receiver, sender=Order):
        Order(status="new").save()
    for thread in threads:
        thread.join()

    assert sorted(a.type for a in Activity.objects) == [
        "customer_created",
        "order_created",
    ]


@pytest.mark.parametrize("in_loop", [False, True], ids=["no-loop", "in-loop"])
def test_async_receiver_saving_a_tracked_document_does_not_recurse(
    in_loop: bool,
) -> None:
    async def audit(sender: Any, activity: Activity) -> None:
        await asyncio.sleep(0)
        Customer(name=f"echo of {activity.type}").save()

    async def main() -> None:
        Customer(name="Ann").save()
        await asyncio.sleep(0.01)

    with ma.activity_logged.connected_to(audit):
        if in_loop:
            asyncio.run(main())
        else:
            Customer(name="Ann").save()

    assert Customer.objects.count() == 2
    assert [a.type for a in Activity.objects] == ["customer_created"]


def test_async_receiver_error_in_a_running_loop_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(sender: Any, activity: Activity) -> None:
        raise KeyError("secret value")

    async def main() -> None:
        with ma.activity_logged.connected_to(broken):
            log_activity("kept", entity=("Thing", 1))
            await asyncio.sleep(0.01)

    asyncio.run(main())
    messages = [
        (record.name, record.levelname, record.getMessage())
        for record in caplog.records
    ]
    assert messages == [
        (
            "mongoengine_activity",
            "ERROR",
            "an async receiver "
            "test_async_receiver_error_in_a_running_loop_is_logged.<locals>.broken "
            "raised KeyError",
        )
    ]
    assert Activity.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"type": None}, "type must be a non-blank string"),
        ({"type": "  "}, "type must be a non-blank string"),
        ({"entity": None}, "entity must keep its type and id"),
        ({"created_at": None}, "created_at must stay a datetime"),
    ],
    ids=["type-none", "type-blank", "entity-none", "created-at-none"],
)
def test_a_receiver_that_breaks_the_activity_stores_nothing(
    change: dict[str, Any], problem: str
) -> None:
    def breaker(sender: Any, activity: Activity) -> None:
        for name, value in change.items():
            setattr(activity, name, value)

    with (
        ma.before_log.connected_to(breaker),
        pytest.raises(ma.ActivityWriteError, match=problem),
    ):
        log_activity("kept", entity=("Thing", 1), on_error="raise")

    assert Activity.objects.count() == 0


def test_data_a_receiver_adds_is_capped_too() -> None:
    ma.configure(max_activity_bytes=8192)

    def enrich(sender: Any, activity: Activity) -> None:
        activity.data = {"blob": "x" * 50_000}

    with ma.before_log.connected_to(enrich):
        log_activity("enriched", entity=("Thing", 1))

    raw = Activity._get_collection().find_one()
    assert len(bson.encode(raw)) <= 8192
    assert raw["meta"]["blob"]["_truncated"] is True
