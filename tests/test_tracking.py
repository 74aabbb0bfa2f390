"""Automatic tracking of creates, updates and deletes."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import mongoengine as me
import pytest
from bson import Decimal128, ObjectId

import mongoengine_activity as ma
from mongoengine_activity import (
    Activity,
    TrackedDocument,
    TrackedDynamicDocument,
    TrackedQuerySet,
    TrackingError,
    options,
    tracking_disabled,
)

from .models import Address, Child, Customer, LineItem, Order, Parent, Untracked
from .spies import CollectionSpy

ORDER_FIELDS = ["status", "total", "customer", "items", "address", "notes", "card"]


def activities(type_: str | None = None) -> list[Activity]:
    query = Activity.objects.order_by("created_at", "id")
    return list(query.filter(type=type_) if type_ else query)


def new_order(**values: object) -> Order:
    customer = Customer(name="Ann").save()
    defaults: dict[str, object] = {
        "status": "new",
        "total": decimal.Decimal("19.90"),
        "customer": customer,
        "items": [LineItem(sku="A1", qty=1), LineItem(sku="B2", qty=2)],
        "address": Address(street="1 Main St", city="Oslo", zip_code="0150"),
        "notes": {"gift": {"wrap": True, "tags": ["red", "blue"]}},
    }
    defaults.update(values)
    return Order(**defaults).save()


def test_create_writes_every_tracked_field_as_to() -> None:
    order = new_order()

    [created] = activities("order_created")
    assert created.entity.type == "Order"
    assert created.entity.id == order.pk
    assert created.user_id is None
    assert [change["path"] for change in created.changes] == ORDER_FIELDS
    by_path = {change["path"]: change for change in created.changes}
    assert by_path["total"] == {
        "path": "total",
        "from": None,
        "to": Decimal128("19.90"),
    }
    assert by_path["customer"]["to"] == order.customer.pk
    assert by_path["address"]["to"] == {
        "street": "1 Main St",
        "city": "Oslo",
        "zip": "0150",
    }


def test_update_writes_only_changed_paths_to_the_element() -> None:
    order = new_order()
    order.items[1].qty = 5
    order.notes["gift"]["tags"].append("green")
    order.address.city = "Bergen"
    order.save()

    [updated] = activities("order_updated")
    assert updated.changes == [
        {"path": "items.1.qty", "from": 2, "to": 5},
        {"path": "address.city", "from": "Oslo", "to": "Bergen"},
        {"path": "notes.gift.tags.2", "from": None, "to": "green"},
    ]


def test_embedded_db_field_names_become_attribute_names_in_paths() -> None:
    order = new_order()
    order.address.zip_code = "5003"
    order.save()

    [updated] = activities("order_updated")
    assert updated.changes == [
        {"path": "address.zip_code", "from": "0150", "to": "5003"}
    ]


def test_saving_without_changes_writes_nothing() -> None:
    order = new_order()
    order.save()
    order.status = "new"
    order.save()

    assert len(activities()) == 2  # customer_created, order_created


def test_double_save_after_one_change_writes_one_update() -> None:
    order = new_order()
    order.status = "paid"
    order.save()
    order.save()

    assert [a.changes for a in activities("order_updated")] == [
        [{"path": "status", "from": "new", "to": "paid"}]
    ]


def test_loaded_document_is_diffed_against_what_was_loaded() -> None:
    new_order()
    loaded = Order.objects.get()
    loaded.items.append(LineItem(sku="C3", qty=1))
    loaded.items[0].tags = ["sale"]
    loaded.save()

    [updated] = activities("order_updated")
    assert updated.changes == [
        {"path": "items.0.tags.0", "from": None, "to": "sale"},
        {"path": "items.2", "from": None, "to": {"sku": "C3", "qty": 1, "tags": []}},
    ]


def test_removing_a_list_element_records_the_whole_list() -> None:
    order = new_order()
    order.items.pop(0)
    order.save()

    [updated] = activities("order_updated")
    assert updated.changes == [
        {
            "path": "items",
            "from": [
                {"sku": "A1", "qty": 1, "tags": []},
                {"sku": "B2", "qty": 2, "tags": []},
            ],
            "to": [{"sku": "B2", "qty": 2, "tags": []}],
        }
    ]


def test_unsetting_a_field_records_it_as_changed_to_none() -> None:
    order = new_order()
    order.address = None
    order.save()

    [updated] = activities("order_updated")
    assert updated.changes == [
        {
            "path": "address",
            "from": {"street": "1 Main St", "city": "Oslo", "zip": "0150"},
            "to": None,
        }
    ]


def test_excluded_field_alone_writes_nothing() -> None:
    order = new_order()
    order.updated_at = dt.datetime(2026, 1, 1)
    order.save()

    assert activities("order_updated") == []


def test_only_loaded_fields_are_never_reported_as_cleared() -> None:
    new_order()
    partial = Order.objects.only("status").get()
    partial.status = "shipped"
    partial.save()

    [updated] = activities("order_updated")
    assert updated.changes == [{"path": "status", "from": "new", "to": "shipped"}]
    stored = Order.objects.get()
    assert stored.items[1].qty == 2


def test_exclude_loaded_document_diffs_only_what_was_loaded() -> None:
    new_order()
    partial = Order.objects.exclude("items", "notes").get()
    partial.address.city = "Tromsø"
    partial.save()

    [updated] = activities("order_updated")
    assert updated.changes == [{"path": "address.city", "from": "Oslo", "to": "Tromsø"}]


def test_user_field_fills_user_id() -> None:
    new_order(placed_by="u-7")

    [created] = activities("order_created")
    assert created.user_id == "u-7"


def test_masked_field_never_reaches_the_store() -> None:
    order = new_order(card={"number": "4111111111111111", "brand": "visa"})
    order.card["number"] = "5500000000000004"
    order.save()

    created = activities("order_created")[0]
    card = next(c for c in created.changes if c["path"] == "card")
    assert card["to"] == {"number": "***", "brand": "visa"}
    [updated] = activities("order_updated")
    assert updated.changes == [{"path": "card.number", "from": "***", "to": "***"}]
    raw = Activity._get_collection().find({}, {"changes": 1})
    assert "4111" not in str(list(raw))


class PresetKey(TrackedDocument):
    key = me.StringField(primary_key=True)
    label = me.StringField()


def test_preset_primary_key_first_save_is_a_create() -> None:
    PresetKey(key="k1", label="one").save()

    assert [a.type for a in activities()] == ["preset_key_created"]
    assert activities()[0].entity.id == "k1"


def test_preset_primary_key_over_existing_document_is_an_update() -> None:
    PresetKey(key="k1", label="one").save()
    PresetKey(key="k1", label="uno").save()

    assert [a.type for a in activities()] == [
        "preset_key_created",
        "preset_key_updated",
    ]
    assert activities()[1].changes == [{"path": "label", "from": "one", "to": "uno"}]


def test_clearing_the_primary_key_saves_a_copy_as_a_create() -> None:
    order = new_order()
    original = order.pk
    order.pk = None
    order.status = "copy"
    order.save()

    created = activities("order_created")
    assert [a.entity.id for a in created] == [original, order.pk]
    assert order.pk != original
    assert next(c for c in created[1].changes if c["path"] == "status")["to"] == "copy"
    assert activities("order_updated") == []


def test_failed_save_writes_nothing() -> None:
    class Unique(TrackedDocument):
        code = me.StringField(unique=True)
        size = me.IntField(min_value=0)

    Unique(code="a").save()
    with pytest.raises(me.NotUniqueError):
        Unique(code="a").save()
    with pytest.raises(me.ValidationError):
        Unique(code="b", size=-1).save()

    assert [a.type for a in activities()] == ["unique_created"]


def test_delete_writes_last_known_values_once() -> None:
    order = new_order()
    order.status = "cancelled"
    order.save()
    order.delete()
    order.delete()

    [deleted] = activities("order_deleted")
    assert deleted.entity.id == order.pk
    assert deleted.changes[0] == {"path": "status", "from": "cancelled", "to": None}
    assert [c["path"] for c in deleted.changes] == ORDER_FIELDS


def test_queryset_delete_writes_one_activity_per_document() -> None:
    for name in ("a", "b", "c"):
        Customer(name=name).save()

    Customer.objects(name__in=["a", "b"]).delete()

    deleted = activities("customer_deleted")
    assert sorted(a.changes[0]["from"] for a in deleted) == ["a", "b"]


def test_cascade_delete_writes_one_activity_per_document() -> None:
    parent = Parent(name="p").save()
    for name in ("c1", "c2"):
        Child(name=name, parent=parent).save()

    parent.delete()

    assert [a.type for a in activities("child_deleted")] == [
        "child_deleted",
        "child_deleted",
    ]
    assert len(activities("parent_deleted")) == 1
    assert Child.objects.count() == 0


def test_untracked_model_queryset_delete_stays_one_server_call() -> None:
    for name in ("a", "b"):
        Untracked(name=name).save()

    with CollectionSpy(Untracked) as spy:
        Untracked.objects.delete()

    assert spy.calls == ["delete_many"]
    assert activities() == []


def test_tracked_save_issues_no_read() -> None:
    order = new_order()
    loaded = Order.objects.get(id=order.pk)
    loaded.status = "paid"

    with CollectionSpy(Order) as spy:
        loaded.save()
        Order(status="fresh").save()

    assert spy.calls == ["update_one", "insert_one"]
    assert len(activities("order_updated")) == 1
    assert len(activities("order_created")) == 2


def test_tracking_disabled_skips_the_block_and_resets_on_error() -> None:
    with tracking_disabled():
        Customer(name="quiet").save()
    with pytest.raises(RuntimeError), tracking_disabled():
        raise RuntimeError("boom")
    Customer(name="loud").save()

    assert [a.changes[0]["to"] for a in activities()] == ["loud"]


def test_save_and_delete_with_track_false() -> None:
    customer = Customer(name="quiet").save(track=False)
    customer.name = "still quiet"
    customer.save(track=False)
    customer.delete(track=False)

    assert activities() == []


def test_changes_after_an_untracked_save_diff_from_what_was_saved() -> None:
    customer = Customer(name="a").save(track=False)
    customer.name = "b"
    customer.save(track=False)
    customer.name = "c"
    customer.save()

    [updated] = activities()
    assert updated.changes == [{"path": "name", "from": "b", "to": "c"}]


def test_reload_refreshes_the_before_image() -> None:
    customer = Customer(name="a").save()
    Customer.objects(id=customer.pk).update_one(set__name="b")
    customer.reload()
    customer.name = "c"
    customer.save()

    [by_queryset, by_save] = activities("customer_updated")
    assert by_queryset.changes == [{"path": "name", "from": "a", "to": "b"}]
    assert by_save.changes == [{"path": "name", "from": "b", "to": "c"}]


def test_activity_itself_cannot_be_tracked() -> None:
    with pytest.raises(TrackingError, match="activities are never tracked"):

        class Sneaky(TrackedDocument):
            name = me.StringField()
            meta = {"collection": "activities"}


def test_queryset_class_must_support_tracking() -> None:
    class Plain(me.QuerySet):
        pass

    with pytest.raises(TrackingError, match=r"must subclass .*TrackedQuerySet"):

        class Custom(TrackedDocument):
            name = me.StringField()
            meta = {"queryset_class": Plain}

    class Fine(TrackedQuerySet):
        pass

    class CustomOk(TrackedDocument):
        name = me.StringField()
        meta = {"queryset_class": Fine}

    CustomOk(name="x").save()
    assert [a.type for a in activities()] == ["custom_ok_created"]


def test_entity_type_and_verbs_can_be_renamed() -> None:
    class Invoice(TrackedDocument):
        number = me.IntField()
        meta = {
            "activity": {
                "entity_type": "BillingInvoice",
                "types": {"delete": "invoice_voided"},
            }
        }

    invoice = Invoice(number=1).save()
    invoice.delete()

    assert [(a.type, a.entity.type) for a in activities()] == [
        ("billing_invoice_created", "BillingInvoice"),
        ("invoice_voided", "BillingInvoice"),
    ]


def test_track_allow_list_limits_paths() -> None:
    class Profile(TrackedDocument):
        name = me.StringField()
        bio = me.StringField()
        meta = {"activity": {"track": ["name"]}}

    profile = Profile(name="a", bio="x").save()
    profile.bio = "y"
    profile.save()
    profile.name = "b"
    profile.save()

    assert [a.changes for a in activities()] == [
        [{"path": "name", "from": None, "to": "a"}],
        [{"path": "name", "from": "a", "to": "b"}],
    ]


def test_disabled_model_writes_nothing() -> None:
    class Silent(TrackedDocument):
        name = me.StringField()
        meta = {"activity": {"enabled": False}}

    Silent(name="a").save().delete()
    assert activities() == []


def test_subclass_adds_privacy_paths_and_overrides_other_options() -> None:
    class Base(TrackedDocument):
        name = me.StringField()
        secret = me.StringField()
        noise = me.StringField()
        meta = {
            "abstract": True,
            "activity": {
                "exclude": ["noise"],
                "mask_fields": ["secret"],
                "mask_pattern": "###",
                "types": {"create": "born"},
            },
        }

    class Derived(Base):
        extra = me.StringField()
        meta = {
            "activity": {
                "exclude": ["extra"],
                "mask_fields": ["name"],
                "types": {"delete": "died"},
            }
        }

    Derived(name="n", secret="s", noise="x", extra="e").save()

    [created] = activities()
    assert (created.type, created.changes) == (
        "derived_created",
        [
            {"path": "name", "from": None, "to": "###"},
            {"path": "secret", "from": None, "to": "###"},
        ],
    )
    options = Derived.activity_options()
    assert (options.exclude, options.mask_fields) == (
        ("noise", "extra"),
        ("secret", "name"),
    )
    assert (options.types.create, options.types.delete) == (None, "died")


def test_inherited_documents_use_their_own_type() -> None:
    class Animal(TrackedDocument):
        name = me.StringField()
        meta = {"allow_inheritance": True}

    class Dog(Animal):
        bark = me.StringField()

    Dog(name="rex", bark="woof").save()
    Animal(name="generic").save()

    assert [(a.type, a.entity.type) for a in activities()] == [
        ("dog_created", "Dog"),
        ("animal_created", "Animal"),
    ]
    assert [c["path"] for c in activities()[0].changes] == ["name", "bark"]


def test_receivers_are_strong_references_connected_once() -> None:
    import gc

    from mongoengine import signals

    gc.collect()
    assert signals.post_save.has_receivers_for(Customer)
    assert not signals.post_save.has_receivers_for(Untracked)
    assert len(list(signals.post_save.receivers_for(Customer))) == 1
    Customer(name="x").save()
    assert len(activities()) == 1


def test_object_ids_survive_as_ids() -> None:
    order = new_order()
    first = order.customer.pk
    other = Customer(name="Bo").save()
    order.customer = other
    order.save()

    [updated] = activities("order_updated")
    assert updated.changes == [{"path": "customer", "from": first, "to": other.pk}]
    assert isinstance(updated.changes[0]["to"], ObjectId)


def test_bulk_insert_writes_one_create_per_document() -> None:
    Customer.objects.insert([Customer(name="a"), Customer(name="b")])
    Customer.objects.insert([Customer(name="c")], load_bulk=False)

    created = activities("customer_created")
    assert [a.changes for a in created] == [
        [{"path": "name", "from": None, "to": name}] for name in ("a", "b", "c")
    ]
    assert {a.entity.id for a in created} == {c.pk for c in Customer.objects}


def test_bulk_inserted_document_diffs_from_what_was_inserted() -> None:
    [customer] = Customer.objects.insert([Customer(name="a")])
    customer.name = "b"
    customer.save()

    assert activities("customer_updated")[0].changes == [
        {"path": "name", "from": "a", "to": "b"}
    ]


class Gadget(TrackedDynamicDocument):
    name = me.StringField()


def test_dynamic_documents_track_undeclared_fields() -> None:
    gadget = Gadget(name="g", color="red").save()
    loaded = Gadget.objects.get(id=gadget.pk)
    loaded.color = "blue"
    loaded.size = {"w": 1}
    loaded.save()
    loaded.delete()

    created, updated, deleted = activities()
    assert created.changes == [
        {"path": "name", "from": None, "to": "g"},
        {"path": "color", "from": None, "to": "red"},
    ]
    assert updated.changes == [
        {"path": "color", "from": "red", "to": "blue"},
        {"path": "size", "from": None, "to": {"w": 1}},
    ]
    assert [c["path"] for c in deleted.changes] == ["name", "color", "size"]


class Loose(TrackedDocument):
    payload = me.DynamicField()
    data = me.DictField()


def test_dynamic_field_edited_in_place_then_saved_diffs_from_what_was_loaded() -> None:
    # A DynamicField hands MongoDB's own containers to the document: an
    # in-place edit must not leak into the before-image.
    Loose(payload={"k": [1]}).save()
    loaded = Loose.objects.get()
    loaded.payload["k"].append(2)
    loaded.payload = {"k": [1, 2], "n": 1}
    loaded.save()

    assert activities("loose_updated")[0].changes == [
        {"path": "payload.k.1", "from": None, "to": 2},
        {"path": "payload.n", "from": None, "to": 1},
    ]


def test_emptied_dict_that_mongoengine_unsets_is_recorded_as_removed() -> None:
    Loose(data={"a": 1}).save()
    loaded = Loose.objects.get()
    loaded.data.pop("a")
    loaded.save()
    loaded.data["b"] = 2
    loaded.save()

    stored = Loose._get_collection().find_one()
    assert stored["data"] == {"b": 2}
    assert [a.changes for a in activities("loose_updated")] == [
        [{"path": "data", "from": {"a": 1}, "to": None}],
        [{"path": "data.b", "from": None, "to": 2}],
    ]


def test_delete_is_filed_under_the_acting_user_not_the_user_field() -> None:
    order = new_order(placed_by="customer-1")
    with ma.activity_context(user_id="moderator-7"):
        order.status = "held"
        order.placed_by = "customer-1"
        order.save()
        order.delete()
    other = new_order(placed_by="customer-2")
    other.delete()

    assert [
        (a.type, a.user_id) for a in activities() if a.type.startswith("order")
    ] == [
        ("order_created", "customer-1"),
        ("order_updated", "customer-1"),
        ("order_deleted", "moderator-7"),
        ("order_created", "customer-2"),
        ("order_deleted", "customer-2"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PurchaseOrder", "purchase_order"),
        ("HTTPServer", "http_server"),
        ("Order2Line", "order2_line"),
        ("注文", "注文"),
        ("Ärger", "ärger"),
        ("ÄrgerÜber", "ärger_über"),
        ("Kunde_Ölfeld", "kunde_ölfeld"),
    ],
    ids=["camel", "acronym", "digit", "cjk", "umlaut", "umlaut-camel", "underscore"],
)
def test_snake_case_keeps_unicode_letters(name: str, expected: str) -> None:
    assert options.snake_case(name) == expected


def test_non_ascii_class_name_gives_a_readable_verb() -> None:
    Ärger = type(
        "Ärger", (TrackedDocument,), {"x": me.StringField(), "__module__": __name__}
    )

    Ärger(x="a").save()

    assert [a.type for a in activities()] == ["ärger_created"]


class _Spot(me.EmbeddedDocument):
    city = me.StringField(db_field="c")
    zip = me.StringField(db_field="z")


def test_map_keys_stay_verbatim_and_embedded_db_fields_below_them_are_renamed() -> None:
    class Places(TrackedDocument):
        addrs = me.MapField(me.EmbeddedDocumentField(_Spot))
        spots = me.ListField(me.DictField(me.EmbeddedDocumentField(_Spot)))

    places = Places(
        addrs={"c": _Spot(city="Oslo", zip="1"), "home": _Spot(city="Rome", zip="2")},
        spots=[{"z": _Spot(city="Pisa", zip="3")}],
    ).save()
    places = Places.objects.get(pk=places.pk)
    places.addrs["c"].city = "Bergen"
    places.addrs["home"].zip = "3"
    places.spots[0]["z"].zip = "4"
    places.save()

    assert activities("places_updated")[0].changes == [
        {"path": "addrs.c.city", "from": "Oslo", "to": "Bergen"},
        {"path": "addrs.home.zip", "from": "2", "to": "3"},
        {"path": "spots.0.z.zip", "from": "3", "to": "4"},
    ]


def test_excluded_sub_paths_are_removed_from_whole_values() -> None:
    class Wallet(TrackedDocument):
        name = me.StringField()
        card = me.DictField()
        items = me.ListField(me.DictField())
        meta = {"activity": {"exclude": ["card.cvv", "items.cvv"]}}

    wallet = Wallet(name="a", card={"number": "4111", "cvv": "123"}).save()
    wallet = Wallet.objects.get(pk=wallet.pk)
    wallet.items.append({"sku": "x", "cvv": "999"})
    wallet.save()
    wallet.card["cvv"] = "456"
    wallet.save()
    wallet.delete()

    assert [(a.type, a.changes) for a in activities()] == [
        (
            "wallet_created",
            [
                {"path": "name", "from": None, "to": "a"},
                {"path": "card", "from": None, "to": {"number": "4111"}},
                {"path": "items", "from": None, "to": []},
            ],
        ),
        ("wallet_updated", [{"path": "items.0", "from": None, "to": {"sku": "x"}}]),
        (
            "wallet_deleted",
            [
                {"path": "name", "from": "a", "to": None},
                {"path": "card", "from": {"number": "4111"}, "to": None},
                {"path": "items", "from": [{"sku": "x"}], "to": None},
            ],
        ),
    ]


def test_tracked_sub_paths_are_kept_from_whole_values() -> None:
    class Home(TrackedDocument):
        name = me.StringField()
        addr = me.DictField()
        meta = {"activity": {"track": ["addr.city"]}}

    home = Home(name="a", addr={"city": "Oslo", "zip": "1"}).save()
    home.addr = {"city": "Oslo", "zip": "2"}
    home.save()
    home.addr = {"city": "Bergen", "zip": "2"}
    home.save()
    home.delete()
    Home(name="b", addr={"zip": "3"}).save()

    assert [(a.type, a.changes) for a in activities()] == [
        ("home_created", [{"path": "addr", "from": None, "to": {"city": "Oslo"}}]),
        ("home_updated", [{"path": "addr.city", "from": "Oslo", "to": "Bergen"}]),
        ("home_deleted", [{"path": "addr", "from": {"city": "Bergen"}, "to": None}]),
        ("home_created", []),
    ]


def test_bulk_insert_failing_partway_logs_the_documents_it_inserted() -> None:
    class Login(TrackedDocument):
        email = me.StringField(unique=True)

    Login(email="dup@x").save()
    first, duplicate, last = (
        Login(email="a@x"),
        Login(email="dup@x"),
        Login(email="c@x"),
    )

    with pytest.raises(me.errors.BulkWriteError, match="Duplicate"):
        Login.objects.insert([first, duplicate, last])

    stored = me.get_db()["login"].find_one({"email": "a@x"})
    assert [(a.entity.id, a.changes) for a in activities("login_created")] == [
        (
            Login.objects.get(email="dup@x").pk,
            [{"path": "email", "from": None, "to": "dup@x"}],
        ),
        (stored["_id"], [{"path": "email", "from": None, "to": "a@x"}]),
    ]
    assert (first.pk, duplicate.pk, last.pk) == (stored["_id"], None, None)
    assert sorted(d["email"] for d in me.get_db()["login"].find()) == ["a@x", "dup@x"]


class Card(me.EmbeddedDocument):
    number = me.StringField(db_field="n")
    brand = me.StringField()


class Wallet(TrackedDocument):
    cards = me.MapField(me.EmbeddedDocumentField(Card))
    meta = {"activity": {"mask_fields": ["cards.*.number"]}}


def test_a_map_wildcard_masks_that_field_of_every_value() -> None:
    wallet = Wallet(cards={"home": Card(number="4111", brand="visa")}).save()
    wallet.cards["home"].number = "5500"
    wallet.cards["work"] = Card(number="3700", brand="amex")
    wallet.save()

    created, updated = activities()
    assert created.changes == [
        {"path": "cards", "from": None, "to": {"home": {"n": "***", "brand": "visa"}}}
    ]
    assert updated.changes == [
        {"path": "cards.work", "from": None, "to": {"n": "***", "brand": "amex"}},
        {"path": "cards.home.number", "from": "***", "to": "***"},
    ]
    assert "4111" not in str(list(Activity._get_collection().find()))


@pytest.mark.parametrize(
    ("path", "suggested"),
    [("cards.number", "cards.*.number"), ("cards.n", "cards.*.number")],
    ids=["attribute-name", "stored-name"],
)
def test_a_value_field_where_a_map_key_belongs_is_refused(
    path: str, suggested: str
) -> None:
    with pytest.raises(
        ma.ConfigurationError,
        match=rf"option 'mask_fields': '{path}' puts the field 'number' where a "
        rf"map key belongs; write '{re.escape(suggested)}'",
    ):

        class Purse(TrackedDocument):
            cards = me.MapField(me.EmbeddedDocumentField(Card))
            meta = {"activity": {"mask_fields": [path]}}
