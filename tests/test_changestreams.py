"""Change streams: writes made outside MongoEngine are logged, once."""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any

import mongoengine as me
import pytest
from bson import ObjectId

from mongoengine_activity import Activity, TrackedDocument, configure
from mongoengine_activity.changestreams import (
    TOKENS_COLLECTION,
    ChangeStreamTracker,
    event_id_for,
    tracked_models,
)

from .fake_changestream import FakeOplog
from .models import Order


class Ticket(TrackedDocument):
    title = me.StringField()
    status = me.StringField()
    owner = me.StringField()
    tags = me.ListField(me.StringField())
    updated_at = me.DateTimeField()

    meta = {
        "collection": "cs_tickets",
        "activity": {
            "change_streams": {"enabled": True},
            "exclude": ["updated_at"],
            "user_field": "owner",
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_tracker(oplog: FakeOplog, clock: Clock, **options: Any) -> ChangeStreamTracker:
    options.setdefault("pre_images", oplog.pre_images)
    return ChangeStreamTracker(
        [Ticket], watch=oplog.watch, clock=clock, grace=2.0, **options
    )


def settle(tracker: ChangeStreamTracker, clock: Clock) -> int:
    """Poll, let the grace period pass, poll again."""
    written = tracker.poll()
    clock.now += 5
    return written + tracker.poll()


def tickets() -> Any:
    return Ticket._get_collection()


def logged_by_stream() -> list[Activity]:
    return list(
        Activity.objects(__raw__={"context.source": "changeStream"}).order_by(
            "created_at", "id"
        )
    )


def test_tracked_models_are_those_with_change_streams_enabled() -> None:
    models = tracked_models()

    assert Ticket in models
    assert Order not in models


def test_an_outside_insert_is_logged_with_every_field(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    ticket_id = oplog.insert(tickets(), {"title": "Printer", "owner": "u-7"})
    event = oplog.events["cs_tickets"][0]

    assert settle(tracker, clock) == 1

    (activity,) = logged_by_stream()
    assert activity.type == "ticket_created"
    assert activity.entity.type == "Ticket"
    assert activity.entity.id == ticket_id
    assert activity.user_id == "u-7"
    assert activity.changes == [
        {"path": "title", "from": None, "to": "Printer"},
        {"path": "owner", "from": None, "to": "u-7"},
    ]
    assert activity.context == {
        "source": "changeStream",
        "operation": "insert",
        "preImage": False,
    }
    assert activity.created_at == event["wallTime"]
    assert activity.event_id == event_id_for(
        f"{tickets().database.name}.cs_tickets", event
    )


def test_an_update_without_pre_images_records_from_as_unknown(clock: Clock) -> None:
    oplog = FakeOplog()
    ticket_id = tickets().insert_one({"title": "Printer", "status": "open"}).inserted_id
    tracker = make_tracker(oplog, clock)
    oplog.update(tickets(), ticket_id, set={"status": "closed"}, unset=["title"])

    settle(tracker, clock)

    (activity,) = logged_by_stream()
    assert activity.type == "ticket_updated"
    assert activity.changes == [
        {"path": "title", "from": None, "to": None},
        {"path": "status", "from": None, "to": "closed"},
    ]
    assert activity.context["preImage"] is False


def test_an_update_with_pre_images_records_exact_diffs(clock: Clock) -> None:
    oplog = FakeOplog(pre_images=True)
    ticket_id = (
        tickets().insert_one({"title": "Printer", "tags": ["a", "b"]}).inserted_id
    )
    tracker = make_tracker(oplog, clock)
    oplog.update(tickets(), ticket_id, set={"tags.1": "c"}, unset=["title"])

    settle(tracker, clock)

    (activity,) = logged_by_stream()
    assert activity.changes == [
        {"path": "title", "from": "Printer", "to": None},
        {"path": "tags.1", "from": "b", "to": "c"},
    ]
    assert activity.context["preImage"] is True
    assert oplog.opened[0]["full_document_before_change"] == "whenAvailable"
    assert oplog.opened[0]["full_document"] == "updateLookup"


@pytest.mark.parametrize(
    ("pre_images", "expected"),
    [
        (True, [{"path": "title", "from": "Printer", "to": None}]),
        (False, []),
    ],
    ids=["pre-image", "no-pre-image"],
)
def test_an_outside_delete_is_logged(
    clock: Clock, pre_images: bool, expected: list[dict[str, Any]]
) -> None:
    oplog = FakeOplog(pre_images=pre_images)
    ticket_id = tickets().insert_one({"title": "Printer"}).inserted_id
    tracker = make_tracker(oplog, clock)
    oplog.delete(tickets(), ticket_id)

    settle(tracker, clock)

    (activity,) = logged_by_stream()
    assert activity.type == "ticket_deleted"
    assert activity.changes == expected


def test_an_outside_replace_with_pre_image_is_diffed(clock: Clock) -> None:
    oplog = FakeOplog(pre_images=True)
    ticket_id = tickets().insert_one({"title": "Printer", "status": "open"}).inserted_id
    tracker = make_tracker(oplog, clock)
    oplog.replace(tickets(), ticket_id, {"title": "Printer", "status": "done"})

    settle(tracker, clock)

    (activity,) = logged_by_stream()
    assert activity.type == "ticket_updated"
    assert activity.changes == [{"path": "status", "from": "open", "to": "done"}]


def test_an_update_of_excluded_fields_only_is_not_logged(clock: Clock) -> None:
    oplog = FakeOplog()
    ticket_id = tickets().insert_one({"title": "Printer"}).inserted_id
    tracker = make_tracker(oplog, clock)
    oplog.update(tickets(), ticket_id, set={"updated_at": dt.datetime(2026, 1, 1)})

    assert settle(tracker, clock) == 0
    assert tracker.skipped == 1
    assert logged_by_stream() == []


def test_writes_the_odm_tracked_are_not_logged_again(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    ticket = Ticket(title="Printer", status="open").save()
    oplog.record(tickets(), "insert", ticket.pk)
    ticket.status = "closed"
    ticket.save()
    oplog.record(
        tickets(),
        "update",
        ticket.pk,
        description={"updatedFields": {"status": "closed"}, "removedFields": []},
    )
    ticket.delete()
    oplog.record(tickets(), "delete", ticket.pk)

    assert tracker.poll() == 0

    assert tracker.skipped == 3
    assert logged_by_stream() == []
    assert [a.type for a in Activity.objects.order_by("created_at", "id")] == [
        "ticket_created",
        "ticket_updated",
        "ticket_deleted",
    ]


def test_an_outside_write_next_to_odm_writes_is_logged_once(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    ticket = Ticket(title="Printer", status="open").save(track=False)
    ticket.status = "triaged"
    ticket.save()
    oplog.record(
        tickets(),
        "update",
        ticket.pk,
        description={"updatedFields": {"status": "triaged"}, "removedFields": []},
    )
    oplog.update(tickets(), ticket.pk, set={"status": "closed"})

    assert settle(tracker, clock) == 1

    (activity,) = logged_by_stream()
    assert activity.changes == [{"path": "status", "from": None, "to": "closed"}]
    assert tracker.skipped == 1


def test_an_event_waits_for_the_odm_activity_during_the_grace(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    ticket = Ticket(title="Printer").save(track=False)
    oplog.record(tickets(), "insert", ticket.pk)

    assert tracker.poll() == 0
    assert tracker._busy()
    # The ODM's own activity lands after the change event was read.
    Ticket.objects(pk=ticket.pk).first().delete(track=False)
    from mongoengine_activity import log_activity

    log_activity("ticket_created", entity=("Ticket", ticket.pk))
    clock.now += 5

    assert tracker.poll() == 0
    assert tracker.skipped == 1
    assert not tracker._busy()


def test_a_restart_resumes_after_the_saved_token(clock: Clock) -> None:
    oplog = FakeOplog()
    with make_tracker(oplog, clock) as first:
        oplog.insert(tickets(), {"title": "one"})
        oplog.insert(tickets(), {"title": "two"})
        settle(first, clock)
    saved = Activity._get_db()[TOKENS_COLLECTION].find_one()
    oplog.insert(tickets(), {"title": "three"})

    with make_tracker(oplog, clock) as second:
        assert settle(second, clock) == 1

    assert saved is not None
    assert saved["_id"].startswith("default:")
    assert saved["token"] == oplog.events["cs_tickets"][1]["_id"]
    assert oplog.opened[1]["resume_after"] == saved["token"]
    assert [a.changes[0]["to"] for a in logged_by_stream()] == ["one", "two", "three"]


def test_a_replay_of_logged_events_writes_nothing_twice(clock: Clock) -> None:
    oplog = FakeOplog()
    with make_tracker(oplog, clock) as first:
        oplog.insert(tickets(), {"title": "one"})
        oplog.insert(tickets(), {"title": "two"})
        settle(first, clock)
    # A crash between writing the activities and saving the token.
    Activity._get_db()[TOKENS_COLLECTION].delete_many({})

    with make_tracker(oplog, clock) as second:
        settle(second, clock)

    assert "resume_after" not in oplog.opened[1]
    assert len(logged_by_stream()) == 2


def test_a_failed_stream_is_reopened_from_the_saved_token(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    oplog.insert(tickets(), {"title": "one"})
    settle(tracker, clock)
    oplog.insert(tickets(), {"title": "two"})
    oplog.fail_next = True

    assert tracker.poll() == 0
    assert settle(tracker, clock) == 1

    assert oplog.opened[-1]["resume_after"] == oplog.events["cs_tickets"][0]["_id"]
    assert len(logged_by_stream()) == 2


def test_events_read_ahead_are_bounded(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock, max_pending=2)
    for title in ("one", "two", "three"):
        oplog.insert(tickets(), {"title": title})

    assert tracker.poll() == 0
    assert len(tracker._setup()[0].pending) == 2
    assert settle(tracker, clock) == 2
    assert settle(tracker, clock) == 1
    assert [a.changes[0]["to"] for a in logged_by_stream()] == ["one", "two", "three"]


def test_run_polls_until_stopped(clock: Clock) -> None:
    oplog = FakeOplog()
    tracker = ChangeStreamTracker([Ticket], watch=oplog.watch, grace=0.0)
    oplog.insert(tickets(), {"title": "one"})
    stop = threading.Event()
    thread = threading.Thread(target=tracker.run, args=(stop,), kwargs={"idle": 0.01})
    thread.start()
    for _ in range(500):
        if tracker.logged:
            break
        stop.wait(0.01)
    stop.set()
    thread.join(timeout=5)

    assert tracker.logged == 1
    assert not thread.is_alive()


def _replica_set_uri() -> str | None:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        return None
    import pymongo

    client: pymongo.MongoClient[Any] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=3000
    )
    try:
        return uri if client.admin.command("hello").get("setName") else None
    finally:
        client.close()


@pytest.mark.server
@pytest.mark.skipif(
    not os.environ.get("MONGODB_URI"),
    reason="change streams need a real replica set: set MONGODB_URI (mongomock "
    "has no change streams)",
)
def test_against_a_real_replica_set() -> None:
    if _replica_set_uri() is None:
        pytest.skip("MONGODB_URI is not a replica set; change streams need one")
    tracker = ChangeStreamTracker([Ticket], grace=0.0)
    tracker.poll()
    ticket_id = ObjectId()
    tickets().insert_one({"_id": ticket_id, "title": "Printer"})
    tickets().update_one({"_id": ticket_id}, {"$set": {"status": "closed"}})
    Ticket(title="ODM").save()
    written = 0
    for _ in range(20):
        written += tracker.poll()
        if written >= 2:
            break
    tracker.close()

    types = [a.type for a in logged_by_stream()]
    assert types == ["ticket_created", "ticket_updated"]


def test_outside_writes_carry_the_documents_tenant(clock: Clock) -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    oplog = FakeOplog()
    tracker = make_tracker(oplog, clock)
    oplog.insert(tickets(), {"title": "no tenant"})
    oplog.insert(tickets(), {"title": "Printer", "orgId": "acme"})

    assert settle(tracker, clock) == 1

    (stored,) = Activity._get_collection().find({"context.source": "changeStream"})
    assert stored["orgId"] == "acme"
    assert tracker.failed == 1
