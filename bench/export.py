"""Memory and time of export_user_data against a raw pymongo export.

    python bench/export.py                         # 10,000 activities, streamed
    python bench/export.py --rows 200000          # the figure in the docs
    python bench/export.py --source mongomock --rows 5000
    python bench/export.py --uri mongodb://localhost:27017

For each format it measures, with tracemalloc, the peak Python memory while
exporting into a sink that discards the bytes, at a tenth of the rows and at
all of them. The baseline is the raw path: the same cursor, each document
encoded with ``bson.json_util.dumps``, nothing else.

Sources: ``stream`` (default) is a cursor stand-in that makes each document as
it is read, so the figure is the export's own memory and not the backend's;
``mongomock`` stores the documents first (it materialises and sorts every
match on each query, so its peak grows with the rows whatever reads it); a
real server with ``--uri``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import mongoengine
from bson import Decimal128, ObjectId, json_util

from mongoengine_activity import Activity
from mongoengine_activity.export import EXPORT_JSON_OPTIONS

USER = ObjectId("65f000000000000000000007")
START = dt.datetime(2026, 1, 1)


class Sink:
    """A binary file object that counts and forgets what it is given."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def document(index: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "userId": USER,
        "entity": {"type": "Order", "id": index % 5000},
        "type": "order_updated",
        "meta": {"total": Decimal128("12.50"), "note": "x" * 40},
        "createdAt": START + dt.timedelta(seconds=index),
        "changes": [{"path": "status", "from": "new", "to": "paid"}],
        "context": {"requestId": f"r-{index}", "ip": "10.0.0.1"},
    }


class StreamCursor:
    """Yields ``rows`` generated documents, in order, one at a time."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def sort(self, *args: Any, **kwargs: Any) -> StreamCursor:
        return self

    def batch_size(self, size: int) -> StreamCursor:
        return self

    def limit(self, rows: int) -> StreamCursor:
        self.rows = min(self.rows, rows)
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (document(index) for index in range(self.rows))


class StreamCollection:
    """The part of a pymongo collection the export uses, over StreamCursor."""

    def __init__(self) -> None:
        self.rows = 0

    def find(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> StreamCursor:
        end = query.get("createdAt", {}).get("$lt")
        rows = self.rows if end is None else int((end - START).total_seconds())
        return StreamCursor(min(rows, self.rows))


def connect(source: str, uri: str | None) -> StreamCollection | None:
    if uri:
        mongoengine.connect(db="bench_export", host=uri, uuidRepresentation="standard")
        return None

    import mongomock

    # mongomock scans every document for TTL expiry on each insert, which
    # makes filling quadratic; it never uses indexes for reads anyway.
    Activity._meta["auto_create_index"] = False
    mongoengine.connect(
        db="bench_export",
        mongo_client_class=mongomock.MongoClient,
        uuidRepresentation="standard",
    )
    if source != "stream":
        return None

    stream = StreamCollection()
    Activity._get_collection = classmethod(lambda cls: stream)
    return stream


def fill(rows: int, stream: StreamCollection | None) -> None:
    if stream is not None:
        stream.rows = rows
        return

    collection = Activity._get_collection()
    collection.delete_many({})
    batch: list[dict[str, Any]] = []
    for index in range(rows):
        batch.append(document(index))
        if len(batch) == 10_000:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)


def raw_export(limit: int) -> int:
    sink = Sink()
    cursor = (
        Activity._get_collection()
        .find(
            {"userId": USER, "createdAt": {"$lt": START + dt.timedelta(seconds=limit)}}
        )
        .sort([("createdAt", 1), ("_id", 1)])
        .batch_size(1000)
    )
    for son in cursor:
        sink.write(json_util.dumps(son, json_options=EXPORT_JSON_OPTIONS).encode())
        sink.write(b"\n")
    return sink.size


def our_export(format: str, limit: int) -> int:
    sink = Sink()
    end = START + dt.timedelta(seconds=limit)
    Activity.export_user_data(USER, format=format, date_range=(None, end), fp=sink)
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
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--source", choices=["stream", "mongomock"], default="stream")
    parser.add_argument("--uri", default=None, help="A real server instead.")
    parser.add_argument(
        "--formats", default="ndjson,csv,json", help="Comma-separated formats."
    )
    args = parser.parse_args()

    stream = connect(args.source, args.uri)
    started = time.perf_counter()
    fill(args.rows, stream)
    source = "server" if args.uri else args.source
    print(
        f"source {source}: {args.rows:,} activities ready in "
        f"{time.perf_counter() - started:.1f}s"
    )
    small = max(args.rows // 10, 1)

    print(
        f"{'path':<8} {'rows':>8} {'peak MiB':>9} {'seconds':>8} "
        f"{'MB out':>7} {'time ratio':>10}"
    )
    for rows in (small, args.rows):
        base_peak, base_seconds, base_size = measure(lambda rows=rows: raw_export(rows))
        print(
            f"{'raw':<8} {rows:>8,} {base_peak:>9.2f} "
            f"{base_seconds:>8.2f} {base_size / 1e6:>7.1f} {'1.00':>10}"
        )
        for format in args.formats.split(","):
            peak, seconds, size = measure(
                lambda format=format, rows=rows: our_export(format, rows)
            )
            print(
                f"{format:<8} {rows:>8,} {peak:>9.2f} "
                f"{seconds:>8.2f} {size / 1e6:>7.1f} {seconds / base_seconds:>10.2f}"
            )


if __name__ == "__main__":
    main()
