"""Bulk logging throughput against raw ``insert_many``, and its memory.

    python bench/bulk.py                  # 100k activities on mongomock
    python bench/bulk.py --uri mongodb://localhost:27017
    python bench/bulk.py --memory 1000000 # peak memory for 1M generated items

The throughput run logs N activities with ``Activity.bulk_log`` and inserts
the same stored documents (built once, outside the timing) with raw
``insert_many`` in chunks of the same size, into emptied collections, and
prints both rates and their ratio (target: at least 0.70).

mongomock checks a unique index, and emulates a TTL index, by scanning the
whole collection on every insert, which makes any insert into the activity
collection quadratic there; on mongomock both paths therefore insert into a
collection without indexes, and a third rate shows the bulk path alone, inserting into a
collection that stores nothing, which is our own overhead per item.

The memory run feeds a generator of N items to ``bulk_log`` under tracemalloc
and prints the peak for N/10 and for N items. On mongomock the inserted
documents would stay in this process's memory, so there the collection's
``insert_many`` is replaced by one that stores nothing: the run measures the
bulk path's own memory, not the database's. With ``--uri`` the real server
stores them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import mongoengine
from bson import ObjectId

from mongoengine_activity import Activity, configure
from mongoengine_activity.writer import prepare_request

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def items(count: int) -> Iterator[dict[str, Any]]:
    for number in range(count):
        yield {
            "type": "order_shipped",
            "entity": ("Order", number % 5000),
            "user_id": f"user-{number % 300}",
            "data": {"carrier": "DHL", "parcel": number, "weight": 1.5},
            "event_id": f"ship-{number}",
            "created_at": BASE + dt.timedelta(seconds=number),
        }


def connect(uri: str | None) -> None:
    if uri:
        mongoengine.connect(db="bench_bulk", host=uri, uuidRepresentation="standard")
    else:
        import mongomock

        mongoengine.connect(
            db="bench_bulk",
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )


def raw_rate(count: int, chunk_size: int) -> float:
    sons = [prepare_request(**item).son for item in items(count)]
    collection = Activity._get_collection()
    collection.delete_many({})
    started = time.perf_counter()
    for start in range(0, count, chunk_size):
        collection.insert_many(sons[start : start + chunk_size], ordered=False)
    elapsed = time.perf_counter() - started
    assert collection.count_documents({}) == count
    return count / elapsed


def bulk_rate(count: int, chunk_size: int) -> float:
    collection = Activity._get_collection()
    collection.delete_many({})
    started = time.perf_counter()
    result = Activity.bulk_log(items(count), chunk_size=chunk_size)
    elapsed = time.perf_counter() - started
    assert result.inserted == count, result
    return count / elapsed


class _Discard:
    """Stands in for the collection in the memory run on mongomock."""

    def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        for document in documents:
            document.setdefault("_id", ObjectId())

    def find_one(self, *args: Any, **kwargs: Any) -> None:
        return None


def pipeline_rate(count: int, chunk_size: int) -> float:
    original = Activity._get_collection
    Activity._get_collection = classmethod(lambda cls: _Discard())  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        result = Activity.bulk_log(items(count), chunk_size=chunk_size)
        elapsed = time.perf_counter() - started
    finally:
        Activity._get_collection = original  # type: ignore[method-assign]
    assert result.inserted == count, result
    return count / elapsed


def peak_memory(count: int, chunk_size: int, discard: bool) -> int:
    original = Activity._get_collection
    if discard:
        Activity._get_collection = classmethod(lambda cls: _Discard())  # type: ignore[assignment]
    else:
        Activity._get_collection().delete_many({})
    try:
        tracemalloc.start()
        result = Activity.bulk_log(items(count), chunk_size=chunk_size)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        Activity._get_collection = original  # type: ignore[method-assign]
    assert result.inserted == count, result
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--memory",
        type=int,
        default=0,
        metavar="N",
        help="also measure peak memory for N generated items (try 1000000)",
    )
    parser.add_argument("--uri", default=None, help="MongoDB URI; mongomock if unset")
    args = parser.parse_args()

    connect(args.uri)
    if args.uri:
        Activity.ensure_indexes()
        backend = "server"
    else:
        # A collection with no indexes at all (see the module documentation).
        Activity._meta["auto_create_index"] = False
        configure(collection="bench_activities")
        backend = "mongomock (no indexes: its unique and TTL checks scan)"
    print(f"backend: {backend}, {args.count} activities, chunks of {args.chunk_size}")
    for round_number in range(1, args.rounds + 1):
        raw = raw_rate(args.count, args.chunk_size)
        ours = bulk_rate(args.count, args.chunk_size)
        print(
            f"round {round_number}: raw insert_many {raw:,.0f}/s, "
            f"bulk_log {ours:,.0f}/s, ratio {ours / raw:.2f} (target >= 0.70)"
        )
        alone = pipeline_rate(args.count, args.chunk_size)
        print(
            f"round {round_number}: bulk_log into a discarding collection "
            f"{alone:,.0f}/s ({1e6 / alone:.1f} us per item of our own work)"
        )

    if args.memory:
        small = max(args.memory // 10, args.chunk_size)
        discard = args.uri is None
        for count in (small, args.memory):
            peak = peak_memory(count, args.chunk_size, discard)
            print(f"peak traced memory for {count:,} items: {peak / 1e6:.1f} MB")
    Activity._get_collection().delete_many({})


if __name__ == "__main__":
    main()
