"""Loading tracked documents against loading untracked ones of the same shape.

    python bench/loads.py [--uri mongodb://...] [--docs 10000] [--repeat 3]

The same ``--docs`` raw documents are stored in two collections, one behind a
``TrackedDocument`` and one behind a plain ``Document`` with the same fields.
After a warm-up on a tenth of them, each repetition, in one process and
alternating which goes first, times:

- query + build: ``list(Model.objects)``, the whole path an application pays;
- build only: ``Model._from_son(raw)`` over documents fetched beforehand, the
  part tracking can add to (it keeps the raw document as the before-image).

The ratios of the medians are what tracking costs on loading; the target is at
most 1.05.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import mongoengine as me
from _harness import connect, drop, median, parse_args, print_table, timed
from bson import Decimal128

from mongoengine_activity import TrackedDocument

TARGET = 1.05


class Item(me.EmbeddedDocument):
    sku = me.StringField()
    qty = me.IntField()
    price = me.Decimal128Field()


class Address(me.EmbeddedDocument):
    street = me.StringField()
    city = me.StringField()
    zip_code = me.StringField(db_field="zip")


class TrackedOrder(TrackedDocument):
    number = me.StringField()
    status = me.StringField()
    total = me.Decimal128Field()
    items = me.ListField(me.EmbeddedDocumentField(Item))
    address = me.EmbeddedDocumentField(Address)
    notes = me.DictField()
    tags = me.ListField(me.StringField())
    updated_at = me.DateTimeField()
    meta = {"collection": "bench_tracked_orders", "activity": {"entity_type": "Order"}}


class PlainOrder(me.Document):
    number = me.StringField()
    status = me.StringField()
    total = me.Decimal128Field()
    items = me.ListField(me.EmbeddedDocumentField(Item))
    address = me.EmbeddedDocumentField(Address)
    notes = me.DictField()
    tags = me.ListField(me.StringField())
    updated_at = me.DateTimeField()
    meta = {"collection": "bench_plain_orders"}


def raw_order(number: int) -> dict[str, Any]:
    return {
        "number": f"SO-{number}",
        "status": ("new", "paid", "shipped")[number % 3],
        "total": Decimal128(decimal.Decimal("129.90")),
        "items": [
            {"sku": "KB-101", "qty": 1, "price": Decimal128("89.00")},
            {"sku": "MS-202", "qty": 2, "price": Decimal128("20.45")},
        ],
        "address": {"street": "Storgata 1", "city": "Oslo", "zip": "0150"},
        "notes": {"gift": number % 2 == 0, "delivery": {"window": "evening"}},
        "tags": ["web", "priority"],
        "updated_at": dt.datetime(2026, 3, 1, 12, 0, 0),
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], docs=10_000, repeat=3)
    backend = connect(args.uri, args.db, clock=args.clock)
    for model in (TrackedOrder, PlainOrder):
        collection = model._get_collection()
        collection.delete_many({})
        collection.insert_many([raw_order(n) for n in range(args.docs)])
    raw = {
        "ours": list(TrackedOrder._get_collection().find()),
        "base": list(PlainOrder._get_collection().find()),
    }
    models = {"ours": TrackedOrder, "base": PlainOrder}

    samples: dict[str, list[float]] = {
        f"{variant} {what}": []
        for variant in ("ours", "base")
        for what in ("query", "build")
    }

    def load(model: Any, sons: list[dict[str, Any]], limit: int) -> tuple[float, float]:
        query = timed(lambda: list(model.objects.limit(limit)))
        build = timed(lambda: [model._from_son(son) for son in sons[:limit]])
        return query, build

    for variant in ("ours", "base"):  # warm up on a tenth of the documents
        load(models[variant], raw[variant], max(1, args.docs // 10))
    for repetition in range(args.repeat):
        order = ("ours", "base") if repetition % 2 else ("base", "ours")
        for variant in order:
            query, build = load(models[variant], raw[variant], args.docs)
            samples[f"{variant} query"].append(query)
            samples[f"{variant} build"].append(build)

    print_table(
        f"loads: {args.docs} documents, median of {args.repeat} runs\n{backend}",
        [
            (
                "query + build (list(objects))",
                median(samples["ours query"]),
                median(samples["base query"]),
                TARGET,
            ),
            (
                "build only (_from_son)",
                median(samples["ours build"]),
                median(samples["base build"]),
                TARGET,
            ),
        ],
        per=args.docs,
        unit="doc",
    )
    drop(args.db)


if __name__ == "__main__":
    main()
