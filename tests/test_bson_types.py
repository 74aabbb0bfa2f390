"""Every BSON type a MongoEngine field can hold survives tracking and reading back."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import mongoengine as me
from bson import Decimal128, ObjectId
from bson.dbref import DBRef

from mongoengine_activity import Activity, TrackedDocument, log_activity

from .models import Customer


class Everything(TrackedDocument):
    oid = me.ObjectIdField()
    amount = me.Decimal128Field()
    price = me.DecimalField(force_string=True)
    at = me.DateTimeField()
    blob = me.BinaryField()
    token = me.UUIDField(binary=False)
    ref = me.ReferenceField(Customer)
    dbref = me.ReferenceField(Customer, dbref=True)
    lazy = me.LazyReferenceField(Customer)
    generic = me.GenericReferenceField()
    nested = me.DictField()
    listed = me.ListField(me.DynamicField())
    nothing = me.StringField()


def _values(customer: Customer) -> dict[str, object]:
    return {
        "oid": ObjectId("65f000000000000000000001"),
        "amount": Decimal128("12.50"),
        "price": decimal.Decimal("9.99"),
        "at": dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC),
        "blob": b"\x00\xffbytes",
        "token": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "ref": customer,
        "dbref": customer,
        "lazy": customer,
        "generic": customer,
        "nested": {"a": {"b": [1, {"c": None}]}, "when": dt.datetime(2026, 1, 1)},
        "listed": [1, "two", 3.5, None, [4]],
    }


def test_created_values_read_back_exactly() -> None:
    customer = Customer(name="Ann").save()
    document = Everything(**_values(customer)).save()

    created = Activity.objects(type="everything_created").get()
    to = {change["path"]: change["to"] for change in created.changes}
    assert to == {
        "oid": ObjectId("65f000000000000000000001"),
        "amount": Decimal128("12.50"),
        "price": "9.99",
        "at": dt.datetime(2026, 3, 1, 12, 30, 15, 123000),
        "blob": b"\x00\xffbytes",
        "token": "12345678-1234-5678-1234-567812345678",
        "ref": customer.pk,
        "dbref": customer.pk,
        "lazy": customer.pk,
        "generic": {"_cls": "Customer", "_ref": customer.pk},
        "nested": {"a": {"b": [1, {"c": None}]}, "when": dt.datetime(2026, 1, 1)},
        "listed": [1, "two", 3.5, None, [4]],
    }
    assert "nothing" not in to
    assert created.entity.id == document.pk


def test_reloaded_document_saved_unchanged_writes_nothing() -> None:
    customer = Customer(name="Ann").save()
    Everything(**_values(customer)).save()

    loaded = Everything.objects.get()
    loaded.at = dt.datetime(
        2026, 3, 1, 13, 30, 15, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    loaded.amount = Decimal128("12.500")
    loaded.ref = DBRef("customer", customer.pk)
    loaded.generic = customer
    loaded.save()

    assert Activity.objects(type="everything_updated").count() == 0


def test_changed_references_are_stored_as_ids() -> None:
    first = Customer(name="Ann").save()
    second = Customer(name="Bo").save()
    document = Everything(**_values(first)).save()

    document.ref = second
    document.dbref = second
    document.generic = second
    document.save()

    updated = Activity.objects(type="everything_updated").get()
    assert updated.changes == [
        {"path": "ref", "from": first.pk, "to": second.pk},
        {"path": "dbref", "from": first.pk, "to": second.pk},
        {"path": "generic._ref", "from": first.pk, "to": second.pk},
    ]


def test_manual_data_keeps_bson_types_and_uuids() -> None:
    token = uuid.UUID("12345678-1234-5678-1234-567812345678")
    data = {
        "id": ObjectId("65f000000000000000000002"),
        "amount": Decimal128("1.10"),
        "exact": decimal.Decimal("3.30"),
        "at": dt.datetime(2026, 3, 1, 12, 0, 0, 999999, tzinfo=dt.UTC),
        "bytes": b"\x01",
        "token": token,
        "nested": [{"k": [token]}],
    }
    log_activity("thing_happened", entity=("Thing", 1), data=data)

    stored = Activity.objects.get()
    assert stored.data == {
        "id": ObjectId("65f000000000000000000002"),
        "amount": Decimal128("1.10"),
        "exact": Decimal128("3.30"),
        "at": dt.datetime(2026, 3, 1, 12, 0, 0, 999000),
        "bytes": b"\x01",
        "token": token,
        "nested": [{"k": [token]}],
    }
