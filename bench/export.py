"""Memory and time of export_user_data against a raw pymongo export.

    python bench/export.py                  # 20,000 activities, mongomock
    python bench/export.py --rows 200000    # the figure in docs/compliance.md
    python bench/export.py --uri mongodb://localhost:27017

For each format it measures, with tracemalloc, the peak Python memory while
exporting into a sink that discards the bytes, at a tenth of the rows and at
all of them. The baseline is the raw path: a pymongo cursor in the same order,
each document encoded with ``bson.json_util.dumps``. mongomock materialises a
sorted result set itself, so on mongomock the baseline's peak grows with the
rows; what the export adds on top of it is the figure that must stay flat.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import mongoengine
from bson import Decimal128, ObjectId, json_util

from mongoengine_activity import Activity
from mongoengine_activity.export import EXPORT_JSON_OPTIONS

USER = ObjectId("65f000000000000000000007")


class Sink:
    """A binary file object that counts and forgets what it is given."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def connect(uri: str | None) -> None:
    if uri:
        mongoengine.connect(db="bench_export", host=uri, uuidRepresentation="standard")
    else:
        import mongomock

        # mongomock scans every document for TTL expiry on each insert, which
        # makes filling quadratic; it never uses indexes for reads anyway.
        Activity._meta["auto_create_index"] = False
        mongoengine.connect(
            db="bench_export",
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )


def fill(rows: int) -> None:
    collection = Activity._get_collection()
    collection.delete_many({})
    start = dt.datetime(2026, 1, 1)
    batch: list[dict[str, Any]] = []
    for index in range(rows):
        batch.append(
            {
                "userId": USER,
                "entity": {"type": "Order", "id": index % 5000},
                "type": "order_updated",
                "meta": {"total": Decimal128("12.50"), "note": "x" * 40},
                "createdAt": start + dt.timedelta(seconds=index),
                "changes": [{"path": "status", "from": "new", "to": "paid"}],
                "context": {"requestId": f"r-{index}", "ip": "10.0.0.1"},
            }
        )
        if len(batch) == 10_000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)


def raw_export(limit: int) -> int:
    sink = Sink()
    cursor = (
        Activity._get_collection()
        .find({"userId": USER})
        .sort([("createdAt", 1), ("_id", 1)])
        .limit(limit)
        .batch_size(1000)
    )
    for son in cursor:
        sink.write(json_util.dumps(son, json_options=EXPORT_JSON_OPTIONS).encode())
        sink.write(b"\n")
    return sink.size


def our_export(format: str, limit: int) -> int:
    sink = Sink()
    end = dt.datetime(2026, 1, 1) + dt.timedelta(seconds=limit)
    Activity.export_user_data(
        USER,
        format=format,
        date_range=(None, end),
        fp=sink,  # type: ignore[arg-type]
    )
    return sink.size


def measure(run: Callable[[], int]) -> tuple[float, float, int]:
    """Return (peak MiB, seconds, bytes written) of one run."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    size = run()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20, seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--uri", default=None)
    parser.add_argument(
        "--formats", default="ndjson,csv,json", help="Comma-separated formats."
    )
    args = parser.parse_args()

    connect(args.uri)
    started = time.perf_counter()
    fill(args.rows)
    print(f"inserted {args.rows:,} activities in {time.perf_counter() - started:.1f}s")
    small = max(args.rows // 10, 1)

    print(
        f"{'path':<8} {'rows':>8} {'peak MiB':>9} {'extra MiB':>10} "
        f"{'seconds':>8} {'MB out':>7} {'time ratio':>10}"
    )
    for rows in (small, args.rows):
        base_peak, base_seconds, base_size = measure(lambda rows=rows: raw_export(rows))
        print(
            f"{'raw':<8} {rows:>8,} {base_peak:>9.1f} {'':>10} "
            f"{base_seconds:>8.2f} {base_size / 1e6:>7.1f} {'1.00':>10}"
        )
        for format in args.formats.split(","):
            peak, seconds, size = measure(
                lambda format=format, rows=rows: our_export(format, rows)
            )
            print(
                f"{format:<8} {rows:>8,} {peak:>9.1f} {peak - base_peak:>10.1f} "
                f"{seconds:>8.2f} {size / 1e6:>7.1f} {seconds / base_seconds:>10.2f}"
            )


if __name__ == "__main__":
    main()
