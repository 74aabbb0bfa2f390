"""Retention: ttl, max_per_entity, prune and crash-safe archiving."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import mongoengine as me
import pytest

import mongoengine_activity as ma
from mongoengine_activity import Activity, TrackedDocument, lifecycle
from mongoengine_activity.writer import log_activity

NOW = dt.datetime(2026, 3, 1, 12, 0, 0)


class Page(TrackedDocument):
    title = me.StringField()

    meta = {"activity": {"ttl": "30d", "max_per_entity": 3}}


def log_at(days_ago: float, entity: Any = ("Order", 1), **kw: Any) -> Any:
    return log_activity(
        "order_touched",
        entity=entity,
        created_at=NOW - dt.timedelta(days=days_ago),
        **kw,
    )


def archive_collection() -> Any:
    return Activity._get_db()["activities_archive"]


# --- ttl


def test_ttl_sets_expires_at_from_created_at() -> None:
    page = Page(title="a").save()

    [created] = Activity.objects
    assert created.expires_at == created.created_at + dt.timedelta(days=30)
    assert page.pk == created.entity.id


def test_changing_ttl_needs_no_index_rebuild() -> None:
    Page(title="a").save()
    ma.configure(ttl="7d")

    class ShortLived(TrackedDocument):
        title = me.StringField()

        meta = {"collection": "page", "activity": {"ttl": "1d"}}

    ShortLived(title="b").save()
    Page(title="c").save()

    ttl = {
        activity.entity.type: activity.expires_at - activity.created_at
        for activity in Activity.objects
    }
    assert ttl == {"Page": dt.timedelta(days=30), "ShortLived": dt.timedelta(days=1)}
    index = Activity._get_collection().index_information()["expiresAt_ttl"]
    assert index["key"] == [("expiresAt", 1)]
    assert index["expireAfterSeconds"] == 0


def test_configure_ttl_applies_to_models_without_their_own() -> None:
    class Memo(TrackedDocument):
        text = me.StringField()

    ma.configure(ttl="12h")
    Memo(text="a").save()

    [created] = Activity.objects
    assert created.expires_at - created.created_at == dt.timedelta(hours=12)


# --- max_per_entity


def test_max_per_entity_keeps_the_newest_after_each_write() -> None:
    page = Page(title="0").save()
    for number in range(1, 6):
        page.title = str(number)
        page.save()
    other = Page(title="other").save()

    kept = Activity.objects(__raw__={"entity.id": page.pk}).order_by("created_at", "id")
    assert [a.changes[0]["to"] for a in kept] == ["3", "4", "5"]
    assert Activity.objects(__raw__={"entity.id": other.pk}).count() == 1


def test_trim_entities_in_one_call() -> None:
    for entity_id in (1, 2):
        for days in range(5):
            log_at(days, entity=("Order", entity_id))
    log_at(0, entity=("Invoice", 1))

    assert lifecycle.trim_entities("Order", 2) == 6
    newest = {
        (a.entity.id, a.created_at)
        for a in Activity.objects(__raw__={"entity.type": "Order"})
    }
    assert newest == {
        (entity_id, NOW - dt.timedelta(days=days))
        for entity_id in (1, 2)
        for days in (0, 1)
    }
    assert Activity.objects.count() == 5


# --- prune


@pytest.mark.parametrize(
    ("kwargs", "deleted", "left"),
    [
        ({}, 6, 4),
        ({"entity_type": "Invoice"}, 3, 7),
        ({"limit": 2}, 2, 8),
        ({"entity_type": "Order", "limit": 10}, 3, 7),
    ],
    ids=["all-old", "one-type", "limit", "type-and-limit"],
)
def test_prune(kwargs: dict[str, Any], deleted: int, left: int) -> None:
    for days in range(5):
        log_at(days * 10, entity=("Order", 1))
        log_at(days * 10 + 1, entity=("Invoice", 1))

    assert lifecycle.prune(dt.timedelta(days=15), now=NOW, **kwargs) == deleted
    assert Activity.objects.count() == left


def test_prune_counts_and_keeps_the_young() -> None:
    for days in (1, 5, 20, 40):
        log_at(days)

    deleted = lifecycle.prune("10d", now=NOW)

    assert deleted == 2
    assert sorted(a.created_at for a in Activity.objects) == [
        NOW - dt.timedelta(days=5),
        NOW - dt.timedelta(days=1),
    ]


def test_prune_limit_removes_the_oldest_first() -> None:
    for days in (11, 12, 13, 14):
        log_at(days)

    assert lifecycle.prune("10d", limit=3, now=NOW) == 3
    assert [a.created_at for a in Activity.objects] == [NOW - dt.timedelta(days=11)]


# --- archive


def seed(count: int) -> set[Any]:
    ids = set()
    for number in range(count):
        activity = log_at(20 + number, entity=("Order", number))
        ids.add(activity.id)
    log_at(1, entity=("Order", "young"))
    return ids


def test_archive_moves_old_activities() -> None:
    old = seed(5)

    result = lifecycle.archive("10d", batch_size=2, now=NOW)

    assert (result.copied, result.deleted, result.batches) == (5, 5, 3)
    assert {son["_id"] for son in archive_collection().find()} == old
    assert Activity.objects.count() == 1


class Crash(Exception):
    pass


def _fail_once(
    monkeypatch: pytest.MonkeyPatch, name: str, *, before: bool, on_call: int
) -> None:
    original: Callable[..., Any] = getattr(lifecycle, name)
    calls = {"n": 0}

    def wrapped(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == on_call and before:
            raise Crash(f"before {name}")
        result = original(*args)
        if calls["n"] == on_call and not before:
            raise Crash(f"after {name}")
        return result

    monkeypatch.setattr(lifecycle, name, wrapped)


def _partial_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    original = lifecycle._copy

    def half(batch: list[dict[str, Any]]) -> None:
        original(batch[: len(batch) // 2])
        raise Crash("in the middle of copying")

    monkeypatch.setattr(lifecycle, "_copy", half)


CRASHES = {
    "before-copy": lambda mp: _fail_once(mp, "_copy", before=True, on_call=1),
    "mid-copy": _partial_copy,
    "after-copy": lambda mp: _fail_once(mp, "_copy", before=False, on_call=1),
    "after-verify": lambda mp: _fail_once(mp, "_verify", before=False, on_call=1),
    "after-delete": lambda mp: _fail_once(mp, "_delete", before=False, on_call=1),
    "second-batch-copy": lambda mp: _fail_once(mp, "_copy", before=False, on_call=2),
    "second-batch-delete": lambda mp: _fail_once(mp, "_delete", before=True, on_call=2),
}


@pytest.mark.parametrize("crash", list(CRASHES), ids=list(CRASHES))
def test_archive_survives_a_crash_at_every_step(crash: str) -> None:
    old = seed(7)
    young = {a.id for a in Activity.objects} - old
    everything = old | young

    with pytest.MonkeyPatch.context() as patch:
        CRASHES[crash](patch)
        with pytest.raises(Crash):
            lifecycle.archive("10d", batch_size=3, now=NOW)

    live = {a.id for a in Activity.objects}
    archived = [son["_id"] for son in archive_collection().find()]
    assert live | set(archived) == everything, "nothing is lost after the crash"
    assert len(archived) == len(set(archived))

    lifecycle.archive("10d", batch_size=3, now=NOW)

    archived = [son["_id"] for son in archive_collection().find()]
    assert sorted(map(str, archived)) == sorted(map(str, old))
    assert {a.id for a in Activity.objects} == young
    assert archive_collection().count_documents({}) == 7


def test_archive_refuses_to_delete_what_it_cannot_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(3)
    monkeypatch.setattr(lifecycle, "_copy", lambda batch: None)

    with pytest.raises(RuntimeError, match="nothing of this batch was deleted"):
        lifecycle.archive("10d", now=NOW)
    assert Activity.objects.count() == 4


def test_archive_keeps_documents_identical() -> None:
    seed(1)
    [original] = Activity._get_collection().find({"entity.id": 0})

    Activity.archive("10d")

    assert archive_collection().find_one({"_id": original["_id"]}) == original


def test_archive_collection_is_configurable() -> None:
    seed(2)
    ma.configure(archive_collection="old_activities")

    lifecycle.archive("10d", now=NOW)

    assert Activity._get_db()["old_activities"].count_documents({}) == 2


def test_archive_due_uses_the_models_archive_after() -> None:
    class Ledger(TrackedDocument):
        amount = me.IntField()

        meta = {"activity": {"archive_after": "15d"}}

    for days in (1, 20):
        log_activity(
            "ledger_posted",
            entity=("Ledger", days),
            created_at=NOW - dt.timedelta(days=days),
        )
    log_at(40)

    result = lifecycle.archive_due(Ledger, now=NOW)

    assert (result.copied, result.deleted) == (1, 1)
    assert [son["entity"]["id"] for son in archive_collection().find()] == [20]
    with pytest.raises(ValueError, match="Page has no archive_after"):
        lifecycle.archive_due(Page)


def test_archive_never_deletes_an_activity_whose_archived_copy_differs() -> None:
    seed(2)
    [victim] = Activity._get_collection().find({"entity.id": 0})
    archive_collection().insert_one({**victim, "type": "TAMPERED"})

    with pytest.raises(
        RuntimeError, match="missing from 'activities_archive', or differ"
    ):
        lifecycle.archive("10d", now=NOW)

    assert Activity._get_collection().find_one({"_id": victim["_id"]}) == victim


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lifecycle.prune("1d", limit=-5, now=NOW), "limit must be a positive"),
        (lambda: lifecycle.prune("1d", limit=0, now=NOW), "limit must be a positive"),
        (
            lambda: lifecycle.archive("1d", batch_size=0, now=NOW),
            "batch_size must be a positive",
        ),
        (
            lambda: lifecycle.archive("1d", batch_size=-1, now=NOW),
            "batch_size must be a positive",
        ),
    ],
    ids=["negative-limit", "zero-limit", "zero-batch", "negative-batch"],
)
def test_counts_must_be_positive(call: Callable[[], Any], message: str) -> None:
    seed(1)

    with pytest.raises(ValueError, match=message):
        call()
    assert Activity.objects.count() == 2
