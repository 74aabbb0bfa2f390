"""A simulated shop whose models are tracked: the demo's data and scenario."""

from __future__ import annotations

import decimal
import random
from collections import Counter
from collections.abc import Callable

import mongoengine as me

from . import Activity, TrackedDocument, activity_context, log_activity


class DemoCustomer(TrackedDocument):
    name = me.StringField(required=True)
    email = me.StringField()
    meta = {"collection": "demo_customers", "activity": {"entity_type": "Customer"}}


class DemoLineItem(me.EmbeddedDocument):  # type: ignore[misc]
    sku = me.StringField()
    qty = me.IntField(min_value=1)


class DemoOrder(TrackedDocument):
    status = me.StringField(default="new")
    customer = me.ReferenceField(DemoCustomer)
    items = me.ListField(me.EmbeddedDocumentField(DemoLineItem))
    total = me.Decimal128Field()
    meta = {"collection": "demo_orders", "activity": {"entity_type": "Order"}}


def run(*, orders: int, seed: int, echo: Callable[[str], None]) -> None:
    """Simulate ``orders`` orders and print the feed and one order's history."""
    rng = random.Random(seed)
    customers = [DemoCustomer(name=f"Customer {n}").save() for n in range(5)]
    created: list[DemoOrder] = []
    for number in range(orders):
        with activity_context(
            user_id=f"user-{rng.randrange(3)}", request_id=f"r{number}"
        ):
            order = DemoOrder(
                customer=rng.choice(customers),
                items=[DemoLineItem(sku="SKU-1", qty=rng.randint(1, 3))],
                total=decimal.Decimal(rng.randint(5, 90)),
            ).save()
            order.items[0].qty += 1
            order.status = "paid"
            order.save()
            log_activity("order_shipped", entity=order, data={"carrier": "UPS"})
            created.append(order)

    counts = Counter(activity.type for activity in Activity.objects.only("type"))
    echo("Activity counts:")
    for verb, count in sorted(counts.items()):
        echo(f"  {verb:<20} {count}")
    first = created[0]
    echo(f"\nHistory of order {first.pk}:")
    for activity in Activity.objects(__raw__={"entity.id": first.pk}).order_by(
        "created_at"
    ):
        echo(f"  {activity.type}")
        for change in activity.changes:
            echo(f"    {change['path']}: {change['from']!r} -> {change['to']!r}")
