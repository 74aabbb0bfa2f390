"""Feed helpers against a raw pymongo ``find`` with the same filter, sort and limit.

    python bench/feeds.py                       # mongomock, 100,000 activities
    python bench/feeds.py --uri mongodb://localhost:27017 --count 1000000

For each helper it times, in one run and on the same data:

- ``raw``: ``collection.find(filter, sort=..., limit=...)`` turned into a list;
- ``docs``: the helper's queryset turned into a list of ``Activity`` documents;
- ``dicts``: the same queryset with ``.as_dicts()`` (no Document construction).

and prints the medians and the ratios ``docs/raw`` and ``dicts/raw`` (target
<= 1.3). The filter and sort given to pymongo are taken from the helper's own
queryset, so both sides run the same query. On mongomock every query scans the
whole collection in Python (it never uses indexes), so its absolute numbers say
nothing about a server; use ``--uri`` for those (see docs/feeds.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mongoengine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mongoengine_activity import Activity
from mongoengine_activity._bson import restore
from mongoengine_activity.pages import _after, decode_cursor

VERBS = [
    f"{entity}_{verb}"
    for entity in ("order", "payment", "customer", "invoice", "shipment")
    for verb in ("created", "updated", "deleted")
]
ENTITIES = ["Order", "Payment", "Customer", "Invoice", "Shipment"]
WORDS = ["express", "standard", "refund", "gift", "priority", "bulk", "retry"]


def connect(uri: str | None) -> None:
    if uri:
        mongoengine.connect(
            db="mongoengine_activity_bench", host=uri, uuidRepresentation="standard"
        )
        return

    import mongomock

    mongoengine.connect(
        db="mongoengine_activity_bench",
        mongo_client_class=mongomock.MongoClient,
        uuidRepresentation="standard",
    )


def fill(count: int, seed: int, *, with_indexes: bool) -> None:
    """``count`` activities over 30 days: 1,000 users, 50 teams, 20,000 entities."""
    rng = random.Random(seed)
    collection = Activity._get_collection()
    collection.drop()
    start = dt.datetime(2026, 1, 1)
    batch: list[dict[str, Any]] = []
    for n in range(count):
        entity = rng.randrange(len(ENTITIES))
        batch.append(
            {
                "userId": f"user-{rng.randrange(1000)}",
                "entity": {"type": ENTITIES[entity], "id": rng.randrange(4000)},
                "type": VERBS[entity * 3 + rng.randrange(3)],
                "meta": {"note": f"{rng.choice(WORDS)} {n}", "qty": rng.randrange(9)},
                # Many activities share a millisecond, as on a busy server.
                "createdAt": start + dt.timedelta(milliseconds=rng.randrange(2**31)),
                "changes": [{"path": "status", "from": "new", "to": "paid"}],
                "context": {"requestId": f"r{n}", "ip": "10.0.0.1"},
                "teamId": rng.randrange(50),
            }
        )
        if len(batch) == 10_000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)
    if with_indexes:
        # After the fill, as a bulk load would; mongomock never uses indexes
        # and checks its unique ones by scanning, so it gets none.
        Activity.ensure_indexes()


# Wall time against a server (the network wait counts); CPU time of this
# process on mongomock, which runs in-process, so other load on the machine
# does not blur the comparison.
clock = time.perf_counter


def median_ms(function: Callable[[], Any], repeat: int) -> float:
    function()  # warm up: connection, caches, index choice
    timings = []
    for _ in range(repeat):
        started = clock()
        function()
        timings.append((clock() - started) * 1000)

    return statistics.median(timings)


Timed = Callable[[], list[Any]]


def helper_case(queryset: Any) -> tuple[Timed, Timed, Timed]:
    """raw, docs and dicts for a feed helper's queryset."""
    collection = Activity._get_collection()
    query, sort, limit = queryset._query, queryset._ordering, queryset._limit or 0
    return (
        lambda: list(collection.find(query, sort=sort, limit=limit)),
        lambda: list(queryset.clone()),
        lambda: list(queryset.as_dicts()),
    )


def page_case(limit: int) -> tuple[Timed, Timed, Timed]:
    """The second page: ``page()`` itself (cursor check included) against the
    find it runs (``limit + 1`` rows, to know whether a next page exists)."""
    collection = Activity._get_collection()
    cursor = Activity.objects.page(limit=limit).next_cursor
    assert cursor is not None
    query = _after(decode_cursor(cursor))
    sort = [("createdAt", -1), ("_id", -1)]
    return (
        lambda: list(collection.find(query, sort=sort, limit=limit + 1)),
        lambda: Activity.objects.page(cursor, limit=limit).items,
        lambda: Activity.objects.as_dicts().page(cursor, limit=limit).items,
    )


def cases(limit: int) -> list[tuple[str, tuple[Timed, Timed, Timed]]]:
    objects = Activity.objects
    helpers = [
        ("global_feed()", objects.global_feed(limit=limit)),
        (
            "global_feed(entities)",
            objects.global_feed(entities=["Order", "Payment"], limit=limit),
        ),
        ("global_feed(types)", objects.global_feed(types="order_updated", limit=limit)),
        ("user_feed", objects.user_feed("user-7", limit=limit)),
        ("team_feed", objects.team_feed(7, limit=limit)),
        ("entity_history", objects.entity_history("Order", 7, limit=limit)),
        ("search(text)", objects.search("refund 1", limit=limit, use_text_index=False)),
    ]
    return [(name, helper_case(queryset)) for name, queryset in helpers] + [
        ("page(after=cursor)", page_case(limit))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="MongoDB URI; mongomock when omitted.")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="Activities (default 100,000 with --uri, 5,000 on mongomock, whose "
        "full scans take about 0.1 s per 1,000 activities and query).",
    )
    parser.add_argument("--limit", type=int, default=50, help="Rows per feed.")
    parser.add_argument(
        "--repeat", type=int, default=None, help="Timed runs (20 with --uri, else 3)."
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    if args.count is None:
        args.count = 100_000 if args.uri else 5_000
    if args.repeat is None:
        args.repeat = 20 if args.uri else 3
    global clock
    clock = time.perf_counter if args.uri else time.process_time
    connect(args.uri)
    started = time.perf_counter()
    fill(args.count, args.seed, with_indexes=bool(args.uri))
    backend = "server " + args.uri if args.uri else "mongomock"
    print(
        f"{args.count:,} activities on {backend}, filled in "
        f"{time.perf_counter() - started:.1f} s; limit {args.limit}, "
        f"median of {args.repeat} runs, "
        f"{'wall' if args.uri else 'CPU'} time"
    )
    print(
        f"{'helper':<24}{'rows':>5}{'raw ms':>10}{'docs ms':>10}{'dicts ms':>10}"
        f"{'docs/raw':>10}{'dicts/raw':>11}"
    )
    for name, (raw_run, docs_run, dicts_run) in cases(args.limit):
        rows = len(dicts_run())
        raw = median_ms(raw_run, args.repeat)
        docs = median_ms(docs_run, args.repeat)
        dicts = median_ms(dicts_run, args.repeat)
        print(
            f"{name:<24}{rows:>5}{raw:>10.2f}{docs:>10.2f}{dicts:>10.2f}"
            f"{docs / raw:>10.2f}{dicts / raw:>11.2f}"
        )

    rows = list(Activity._get_collection().find(limit=args.limit))
    build = median_ms(lambda: [Activity._from_son(row) for row in rows], args.repeat)
    light = median_ms(lambda: [restore(row) for row in rows], args.repeat)
    print(
        f"no query, {len(rows)} raw rows: Documents built in {build:.2f} ms, "
        f"restore() in {light:.2f} ms (what docs and dicts add on any backend)"
    )
    if not args.uri:
        print(
            "mongomock scans every document in Python; run with --uri against "
            "a server for absolute figures."
        )
    Activity._get_collection().drop()


if __name__ == "__main__":
    main()
