"""Tracking of QuerySet update(), update_one(), modify() and delete()."""

from __future__ import annotations

from typing import Any

import mongoengine as me
import pytest

import mongoengine_activity as ma
from mongoengine_activity import Activity, TrackedDocument, tracking_disabled

from .spies import CollectionSpy


class Stock(TrackedDocument):
    sku = me.StringField()
    qty = me.IntField(db_field="q")
    tags = me.ListField(me.StringField())
    secret = me.StringField()

    meta = {"activity": {"exclude": ["secret"]}}


def changes_by_entity(type_: str) -> dict[object, list[dict[str, object]]]:
    return {
        activity.entity.id: activity.changes
        for activity in Activity.objects(type=type_).order_by("id")
    }


def stock(*rows: tuple[str, int]) -> list[Stock]:
    with tracking_disabled():
        return [Stock(sku=sku, qty=qty, tags=["a"]).save() for sku, qty in rows]


def test_update_logs_one_activity_per_document() -> None:
    a, b, c = stock(("A", 1), ("B", 2), ("C", 9))

    count = Stock.objects(qty__lt=5).update(inc__qty=10, push__tags="b", secret="x")

    assert count == 2
    assert changes_by_entity("stock_updated") == {
        a.pk: [
            {"path": "qty", "from": 1, "to": 11},
            {"path": "tags.1", "from": None, "to": "b"},
        ],
        b.pk: [
            {"path": "qty", "from": 2, "to": 12},
            {"path": "tags.1", "from": None, "to": "b"},
        ],
    }
    assert c.pk not in changes_by_entity("stock_updated")


def test_update_reads_once_before_and_once_after() -> None:
    stock(("A", 1), ("B", 2), ("C", 3))

    with CollectionSpy(Stock) as spy:
        Stock.objects.update(inc__qty=1)

    assert spy.calls == ["find", "update_many", "find"]


def test_update_one_logs_only_the_document_changed() -> None:
    a, _ = stock(("A", 1), ("A", 2))

    assert Stock.objects(sku="A").update_one(set__qty=5) == 1

    assert changes_by_entity("stock_updated") == {
        a.pk: [{"path": "qty", "from": 1, "to": 5}]
    }


def test_update_that_changes_nothing_logs_nothing() -> None:
    stock(("A", 1))

    assert Stock.objects.update(set__qty=1) == 1
    assert Activity.objects.count() == 0


def test_full_result_is_kept() -> None:
    stock(("A", 1), ("B", 1))

    result = Stock.objects.update(inc__qty=1, full_result=True)

    assert (result.matched_count, result.modified_count) == (2, 2)


def test_upsert_logs_a_create() -> None:
    result = Stock.objects(sku="Z").update_one(
        set__qty=3, upsert=True, full_result=True
    )

    [created] = Activity.objects(type="stock_created")
    assert created.entity.id == result.upserted_id
    assert created.changes == [
        {"path": "sku", "from": None, "to": "Z"},
        {"path": "qty", "from": None, "to": 3},
    ]


def test_instance_update_is_tracked() -> None:
    [a] = stock(("A", 1))

    a.update(set__sku="AA", pull__tags="a")

    assert changes_by_entity("stock_updated") == {
        a.pk: [
            {"path": "sku", "from": "A", "to": "AA"},
            {"path": "tags", "from": ["a"], "to": []},
        ]
    }


@pytest.mark.parametrize("new", [True, False], ids=["new", "old"])
def test_modify_logs_real_before_and_after(new: bool) -> None:
    [a] = stock(("A", 1))

    with CollectionSpy(Stock) as spy:
        returned = Stock.objects(sku="A").modify(inc__qty=4, new=new)

    assert returned is not None
    assert returned.qty == (5 if new else 1)
    assert spy.calls == ["find_one", "find_one_and_update"]
    assert changes_by_entity("stock_updated") == {
        a.pk: [{"path": "qty", "from": 1, "to": 5}]
    }


def test_modify_without_a_match_logs_nothing() -> None:
    assert Stock.objects(sku="none").modify(set__qty=1) is None
    assert Activity.objects.count() == 0


def test_modify_upsert_logs_a_create() -> None:
    created = Stock.objects(sku="N").modify(set__qty=2, upsert=True, new=True)

    [activity] = Activity.objects
    assert activity.type == "stock_created"
    assert activity.entity.id == created.pk


def test_modify_remove_logs_a_delete() -> None:
    [a] = stock(("A", 1))

    Stock.objects(sku="A").modify(remove=True)

    [deleted] = Activity.objects
    assert deleted.type == "stock_deleted"
    assert deleted.entity.id == a.pk
    assert deleted.changes[:2] == [
        {"path": "sku", "from": "A", "to": None},
        {"path": "qty", "from": 1, "to": None},
    ]


def test_instance_modify_is_tracked_once() -> None:
    [a] = stock(("A", 1))

    assert a.modify(set__qty=7)

    assert a.qty == 7
    assert changes_by_entity("stock_updated") == {
        a.pk: [{"path": "qty", "from": 1, "to": 7}]
    }
    a.sku = "B"
    a.save()
    assert [act.changes for act in Activity.objects.order_by("id")][-1] == [
        {"path": "sku", "from": "A", "to": "B"}
    ]


def test_queryset_delete_logs_each_document() -> None:
    a, b = stock(("A", 1), ("B", 2))

    assert Stock.objects.delete() == 2

    assert sorted(str(act.entity.id) for act in Activity.objects) == sorted(
        [str(a.pk), str(b.pk)]
    )


def test_untracked_when_tracking_is_disabled() -> None:
    stock(("A", 1))

    with tracking_disabled(), CollectionSpy(Stock) as spy:
        Stock.objects.update(inc__qty=1)

    assert spy.calls == ["update_many"]
    assert Activity.objects.count() == 0


def test_large_updates_run_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from mongoengine_activity import querysets

    monkeypatch.setattr(querysets, "BATCH_SIZE", 2)
    stock(*[(str(n), n) for n in range(5)])

    with CollectionSpy(Stock) as spy:
        assert Stock.objects.update(inc__qty=1) == 5

    assert spy.calls == ["find"] + ["update_many", "find"] * 3
    assert Activity.objects.count() == 5


def test_instance_update_refreshes_the_before_image() -> None:
    [a] = stock(("A", 1))

    a.update(set__qty=5)
    a.qty = 9
    a.save()

    assert [act.changes for act in Activity.objects.order_by("id")] == [
        [{"path": "qty", "from": 1, "to": 5}],
        [{"path": "qty", "from": 5, "to": 9}],
    ]


class Job(TrackedDocument):
    status = me.StringField()
    n = me.IntField()


def test_modify_takes_the_next_match_when_its_first_was_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(3):
        Job(status="pending", n=n).save(track=False)
    original = me.QuerySet.modify
    raced: list[int] = []

    def racing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not raced:
            # Another worker claims job 0 between the read and the modify.
            raced.append(1)
            Job._get_collection().update_one({"n": 0}, {"$set": {"status": "other"}})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(me.QuerySet, "modify", racing)

    claimed = (
        Job.objects(status="pending")
        .order_by("n")
        .modify(set__status="taken", new=True)
    )

    assert claimed is not None and (claimed.n, claimed.status) == (1, "taken")
    [activity] = Activity.objects(type="job_updated")
    assert activity.changes == [{"path": "status", "from": "pending", "to": "taken"}]


class Ledger(TrackedDocument):
    orgId = me.StringField()
    v = me.IntField()


def test_update_without_a_usable_tenant_changes_nothing() -> None:
    ma.configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    with ma.activity_context(tenant="A"):
        Ledger(orgId="A", v=0).save()
        Ledger(v=1).save()
    Ledger._get_collection().update_one({"v": 1}, {"$unset": {"orgId": 1}})

    with pytest.raises(ma.TenantRequiredError):
        Ledger.objects.update(inc__v=10)

    assert sorted(d["v"] for d in Ledger._get_collection().find()) == [0, 1]
    with ma.activity_context(tenant=ma.ALL_TENANTS):
        assert Activity.objects(type="ledger_updated").count() == 0
