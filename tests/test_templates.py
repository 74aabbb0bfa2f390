"""Message templates: ``Activity.register_template`` and ``activity.render()``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Decimal128, ObjectId

from mongoengine_activity import (
    Activity,
    ConfigurationError,
    Rendered,
    log_activity,
)
from mongoengine_activity import templates as templates_module

from .models import Customer, Order

T0 = dt.datetime(2026, 3, 1, 12, 0, 0)


def shipped(data: dict[str, Any], **kwargs: Any) -> Activity:
    kwargs.setdefault("entity", ("Order", 42))
    kwargs.setdefault("user_id", "ann")
    activity = log_activity(
        "order_shipped", data=data, created_at=T0, on_error="raise", **kwargs
    )
    assert activity is not None
    return activity


def test_register_and_render() -> None:
    Activity.register_template(
        "order_shipped",
        message="Order {{orderId}} shipped via {{carrier}}",
        icon="shipping",
        color="#00c853",
    )

    rendered = shipped({"orderId": "A-17", "carrier": "UPS"}).render()

    assert rendered == Rendered(
        message="Order A-17 shipped via UPS", icon="shipping", color="#00c853"
    )
    assert str(rendered) == "Order A-17 shipped via UPS"


@pytest.mark.parametrize(
    ("message", "data", "expected"),
    [
        ("{{entity.type}} {{entity.id}} by {{user_id}}", {}, "Order 42 by ann"),
        ("{{ carrier }}", {"carrier": "DHL"}, "DHL"),
        ("{{address.city}}", {"address": {"city": "Oslo"}}, "Oslo"),
        ("{{items.1.sku}}", {"items": [{"sku": "A"}, {"sku": "B"}]}, "B"),
        ("{{items.5.sku}}", {"items": [{"sku": "A"}]}, ""),
        ("[{{missing}}]", {}, "[]"),
        ("[{{missing|someone}}]", {}, "[someone]"),
        ("[{{carrier|someone}}]", {"carrier": "DHL"}, "[DHL]"),
        ("{{type}} {{data.type}}", {"type": "express"}, "order_shipped express"),
        ("{{team_id}}|{{created_at}}", {}, "|2026-03-01T12:00:00"),
        ("{{tags}}", {"tags": ["red", "blue"]}, "red, blue"),
        ("{{gift}}", {"gift": True}, "true"),
        ("{{total}}", {"total": Decimal128("19.90")}, "19.90"),
        ("{{n}}", {"n": 0}, "0"),
        ("{{note}}", {"note": "use {{carrier}}", "carrier": "UPS"}, "use {{carrier}}"),
        ("{{a}}{{b}}", {"a": "{{", "b": "b}}"}, "{{b}}"),
        ("{{}}", {"": "x"}, ""),
        ("{ {carrier} } {carrier}", {"carrier": "UPS"}, "{ {carrier} } {carrier}"),
    ],
    ids=[
        "entity-and-user",
        "spaces",
        "nested",
        "list-index",
        "list-out-of-range",
        "missing-empty",
        "missing-fallback",
        "present-ignores-fallback",
        "data-prefix",
        "fields",
        "list",
        "bool",
        "decimal",
        "zero",
        "value-stays-literal",
        "values-never-joined",
        "empty-path",
        "not-placeholders",
    ],
)
def test_placeholders(message: str, data: dict[str, Any], expected: str) -> None:
    Activity.register_template("order_shipped", message=message)

    assert shipped(data).render().message == expected


@pytest.mark.parametrize(
    "message",
    [
        "{{_secret}}",
        "{{__class__}}",
        "{{user_id.__class__}}",
        "{{entity.__dict__}}",
        "{{address.__len__}}",
        "{{_secret|fallback}}",
        "{{__import__('os').getcwd()}}",
        "{{7*7}}",
    ],
    ids=[
        "private",
        "dunder",
        "dunder-on-field",
        "entity-dict",
        "dunder-in-data",
        "private-no-fallback",
        "code",
        "arithmetic",
    ],
)
def test_private_paths_and_code_render_nothing(message: str) -> None:
    Activity.register_template("order_shipped", message=f"[{message}]")

    activity = shipped({"_secret": "s3cret", "address": {"city": "Oslo"}})

    assert activity.render().message == "[]"


def test_html_escapes_values_not_the_template() -> None:
    Activity.register_template(
        "order_shipped", message="<b>{{carrier}}</b> {{note|<none>}}"
    )

    activity = shipped({"carrier": '<script>alert("x")</script> & co'})

    assert activity.render(html=True).message == (
        "<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co</b> &lt;none&gt;"
    )
    assert activity.render().message == (
        '<b><script>alert("x")</script> & co</b> <none>'
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            [
                {"path": "status", "from": "new", "to": "paid"},
                {"path": "items.2.qty", "from": 1, "to": 2},
            ],
            "order_updated: status, items.2.qty",
        ),
        ([], "order_updated"),
    ],
    ids=["changes", "no-changes"],
)
def test_default_rendering(changes: list[dict[str, Any]], expected: str) -> None:
    activity = log_activity(
        "order_updated", entity=("Order", 1), changes=changes, on_error="raise"
    )
    assert activity is not None

    assert activity.render() == Rendered(message=expected, icon=None, color=None)


def test_default_rendering_escapes_html() -> None:
    activity = log_activity("<b>bold</b>", entity=("Order", 1), on_error="raise")
    assert activity is not None

    assert activity.render(html=True).message == "&lt;b&gt;bold&lt;/b&gt;"


def test_rendering_survives_a_deleted_entity_and_user() -> None:
    Activity.register_template(
        "order_updated",
        message="{{entity.type}} {{entity.id}} by {{user_id|a deleted user}}",
    )
    customer = Customer(name="Ann").save()
    order = Order(customer=customer, placed_by=None).save()
    order.status = "paid"
    order.save()
    order_id = order.pk
    order.delete()
    customer.delete()

    activity = Activity.objects.get(type="order_updated")

    assert activity.render().message == f"Order {order_id} by a deleted user"


def test_rendering_a_stored_dict_matches_the_document() -> None:
    Activity.register_template(
        "order_shipped", message="{{entity.type}} {{orderId}} {{user_id}}"
    )
    activity = shipped({"orderId": "A-1"}, user_id=ObjectId("65a000000000000000000001"))
    row = Activity.objects.as_dicts().first()

    assert templates_module.render(row) == activity.render()
    assert activity.render().message == "Order A-1 65a000000000000000000001"


def test_rendering_a_dict_without_entity_or_user() -> None:
    Activity.register_template("imported", message="[{{entity.type}}|{{user_id}}]")

    rendered = templates_module.render({"type": "imported"})

    assert rendered.message == "[|]"


def test_registering_again_replaces_and_unregister_forgets() -> None:
    Activity.register_template("order_shipped", message="one")
    Activity.register_template("order_shipped", message="two", icon="box")
    activity = shipped({})

    assert activity.render() == Rendered(message="two", icon="box", color=None)
    templates_module.unregister_template("order_shipped")
    assert activity.render().message == "order_shipped"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("",), {"message": "x"}, "type must be a non-empty string"),
        (("t",), {"message": None}, "message must be a string"),
        (("t",), {"message": "x", "icon": 3}, "icon must be a string or None"),
        (("t",), {"message": "x", "color": b"#fff"}, "color must be a string"),
    ],
    ids=["type", "message", "icon", "color"],
)
def test_bad_templates_raise(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Activity.register_template(*args, **kwargs)
