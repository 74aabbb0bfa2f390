"""Tracked models shared by the tests: a small shop."""

from __future__ import annotations

import datetime as dt

import mongoengine as me

from mongoengine_activity import TrackedDocument


class Address(me.EmbeddedDocument):
    street = me.StringField()
    city = me.StringField()
    zip_code = me.StringField(db_field="zip")


class LineItem(me.EmbeddedDocument):
    sku = me.StringField()
    qty = me.IntField()
    tags = me.ListField(me.StringField())


class Customer(TrackedDocument):
    name = me.StringField()
    email = me.StringField()


class Order(TrackedDocument):
    status = me.StringField(default="new")
    total = me.Decimal128Field()
    customer = me.ReferenceField(Customer)
    items = me.ListField(me.EmbeddedDocumentField(LineItem))
    address = me.EmbeddedDocumentField(Address)
    notes = me.DictField()
    card = me.DictField()
    updated_at = me.DateTimeField()
    placed_by = me.StringField()

    meta = {
        "activity": {
            "exclude": ["updated_at"],
            "mask_fields": ["card.number"],
            "user_field": "placed_by",
        }
    }


class Untracked(me.Document):
    name = me.StringField()


class Parent(TrackedDocument):
    name = me.StringField()


class Child(TrackedDocument):
    name = me.StringField()
    parent = me.ReferenceField(Parent, reverse_delete_rule=me.CASCADE)


def now() -> dt.datetime:
    return dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
