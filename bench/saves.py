"""Tracked saves against untracked saves plus a raw insert of the activity.

    python bench/saves.py [--uri mongodb://...] [--docs 1000] [--repeat 7]

For each repetition, in one process, in batches (the collections are emptied
between batches, untimed, because mongomock scans a whole collection for
every unique-index check, which a server's index does not) and alternating
which variant goes first:

- ours: ``TrackedDocument.save()`` creating ``--docs`` orders, then updating
  each (a status and one line item's quantity), inside ``activity_context``;
- baseline: the same saves on an identical untracked ``Document``, each
  followed by a raw pymongo ``insert_one`` of the activity document that the
  tracked save wrote (built once, outside the timing).

The ratio of the medians is what tracking costs on top of writing the
activity at all; the target is at most 1.15.
"""

from __future__ import annotations

import decimal
from typing import Any

import mongoengine as me
from _harness import connect, drop, median, parse_args, print_table, timed

from mongoengine_activity import Activity, TrackedDocument, activity_context

TARGET = 1.15


class Item(me.EmbeddedDocument):
    sku = me.StringField()
    qty = me.IntField()


class Address(me.EmbeddedDocument):
    street = me.StringField()
    city = me.StringField()


class TrackedOrder(TrackedDocument):
    number = me.StringField()
    status = me.StringField()
    total = me.Decimal128Field()
    items = me.ListField(me.EmbeddedDocumentField(Item))
    address = me.EmbeddedDocumentField(Address)
    notes = me.DictField()
    updated_at = me.DateTimeField()
    meta = {
        "collection": "bench_tracked_orders",
        "activity": {"entity_type": "Order", "exclude": ["updated_at"]},
    }


class PlainOrder(me.Document):
    number = me.StringField()
    status = me.StringField()
    total = me.Decimal128Field()
    items = me.ListField(me.EmbeddedDocumentField(Item))
    address = me.EmbeddedDocumentField(Address)
    notes = me.DictField()
    updated_at = me.DateTimeField()
    meta = {"collection": "bench_plain_orders"}


def new_order(model: Any, number: int) -> Any:
    return model(
        number=f"SO-{number}",
        status="new",
        total=decimal.Decimal("129.90"),
        items=[Item(sku="KB-101", qty=1), Item(sku="MS-202", qty=2)],
        address=Address(street="Storgata 1", city="Oslo"),
        notes={"gift": False},
    )


def edit(order: Any) -> None:
    order.status = "paid"
    order.items[1].qty += 1


def sample_activities() -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored create and update activities of one tracked order."""
    with activity_context(user_id="user-1", request_id="req-1"):
        order = new_order(TrackedOrder, 0).save()
        edit(order)
        order.save()
    stored = Activity._get_collection()
    created = stored.find_one({"type": "order_created"}, {"_id": 0})
    updated = stored.find_one({"type": "order_updated"}, {"_id": 0})
    clear()
    return created, updated


def clear() -> None:
    for model in (TrackedOrder, PlainOrder, Activity):
        model._get_collection().delete_many({})


def run_batch(
    variant: str, start: int, size: int, sons: tuple[dict[str, Any], dict[str, Any]]
) -> tuple[float, float]:
    """Create then update ``size`` orders; return the seconds of each phase."""
    activities = Activity._get_collection()
    created_son, updated_son = sons

    def activity(son: dict[str, Any], order: Any) -> dict[str, Any]:
        return {**son, "entity": {"type": "Order", "id": order.pk}}

    def save_tracked() -> None:
        for order in orders:
            order.save()

    def create_plain() -> None:
        for order in orders:
            order.save()
            activities.insert_one(activity(created_son, order))

    def update_plain() -> None:
        for order in orders:
            order.save()
            activities.insert_one(activity(updated_son, order))

    model = TrackedOrder if variant == "ours" else PlainOrder
    orders = [new_order(model, start + n) for n in range(size)]
    with activity_context(user_id="user-1", request_id="req-1"):
        create = timed(save_tracked if variant == "ours" else create_plain)
        for order in orders:
            edit(order)
        update = timed(save_tracked if variant == "ours" else update_plain)
    written = activities.count_documents({})
    if written != 2 * size:
        raise SystemExit(f"{variant}: {written} activities for {size} orders")
    clear()
    return create, update


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], docs=400, repeat=5, batch=100)
    backend = connect(args.uri, args.db, clock=args.clock)
    sons = sample_activities()

    samples: dict[str, list[float]] = {
        name: []
        for name in ("ours create", "base create", "ours update", "base update")
    }
    for repetition in range(args.repeat + 1):
        totals = dict.fromkeys(samples, 0.0)
        for start in range(0, args.docs, args.batch):
            size = min(args.batch, args.docs - start)
            # Alternate which variant goes first, so drift hits both alike.
            order = ("ours", "base") if start // args.batch % 2 else ("base", "ours")
            for variant in order:
                create, update = run_batch(variant, start, size, sons)
                totals[f"{variant} create"] += create
                totals[f"{variant} update"] += update
        if repetition:  # the first round warms up
            for name, total in totals.items():
                samples[name].append(total)

    create = (median(samples["ours create"]), median(samples["base create"]))
    update = (median(samples["ours update"]), median(samples["base update"]))
    print_table(
        f"saves: {args.docs} creates + {args.docs} updates in batches of "
        f"{args.batch}, median of {args.repeat} runs\n{backend}",
        [
            ("create", *create, TARGET),
            ("update", *update, TARGET),
            ("both, per order", create[0] + update[0], create[1] + update[1], TARGET),
        ],
        per=args.docs,
        unit="save",
    )
    drop(args.db)


if __name__ == "__main__":
    main()
