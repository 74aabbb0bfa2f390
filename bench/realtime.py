"""What live streams cost: writers with open streams, delivery, replay, memory.

    python bench/realtime.py [--n 300] [--streams 10] [--uri mongodb://...]

Compares ``log_activity`` with no stream open (the baseline) and with slow
streams open (nobody reads them: their queues overflow), and a raw
``insert_one`` of the same documents, each run on an emptied collection
(mongomock checks unique indexes by scanning: keep ``--n`` small there); then
how fast a stream delivers live
activities and replays them from the log, and the memory the slow streams
hold (tracemalloc).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable

import mongoengine

from mongoengine_activity import Activity, create_activity_stream, log_activity
from mongoengine_activity._bson import now_ms


def timed(label: str, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    print(f"  {label:<44} {elapsed:8.3f} s")
    return elapsed


def log_many(n: int) -> None:
    for number in range(n):
        log_activity("order_shipped", entity=("Order", number), user_id="u-1")


def raw_many(n: int) -> None:
    collection = Activity._get_collection()
    for number in range(n):
        collection.insert_one(
            {
                "userId": "u-1",
                "entity": {"type": "Order", "id": number},
                "type": "order_shipped",
                "meta": {},
                "createdAt": now_ms(),
                "changes": [],
                "context": {},
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="activities per run")
    parser.add_argument("--streams", type=int, default=10, help="slow streams")
    parser.add_argument("--max-queue", type=int, default=100)
    parser.add_argument("--uri", help="MongoDB URI (mongomock when omitted)")
    args = parser.parse_args()
    if args.uri:
        mongoengine.connect(host=args.uri)
    else:
        import mongomock

        mongoengine.connect("bench_realtime", mongo_client_class=mongomock.MongoClient)
    collection = Activity._get_collection()
    collection.delete_many({})
    n = args.n

    print(f"writers, {n} activities:")
    raw = timed("raw insert_one", lambda: raw_many(n))
    collection.delete_many({})
    base = timed("log_activity, no stream open", lambda: log_many(n))
    collection.delete_many({})
    streams = [
        create_activity_stream(max_queue=args.max_queue) for _ in range(args.streams)
    ]
    loaded = timed(
        f"log_activity, {args.streams} slow streams open", lambda: log_many(n)
    )
    for stream in streams:
        stream.close()

    # Memory on its own pass: tracemalloc slows everything down.
    collection.delete_many({})
    streams = [
        create_activity_stream(max_queue=args.max_queue) for _ in range(args.streams)
    ]
    largest = 0
    tracemalloc.start()
    for number in range(n):
        log_activity("order_shipped", entity=("Order", number), user_id="u-1")
        largest = max(largest, *(stream.queued() for stream in streams))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for stream in streams:
        stream.close()

    print("delivery:")
    collection.delete_many({})
    with create_activity_stream(max_queue=n) as stream:
        log_many(n)
        live = timed(
            f"drain {n} live activities",
            lambda: sum(1 for _ in iter(lambda: stream.next(timeout=0), None)),
        )
    first = collection.find_one(sort=[("createdAt", 1), ("_id", 1)])
    assert first is not None
    with create_activity_stream(last_event_id=str(first["_id"])) as stream:
        replayed = timed(
            "replay the log after its first activity",
            lambda: sum(1 for _ in iter(lambda: stream.next(timeout=0), None)),
        )

    total = collection.count_documents({})
    print("ratios:")
    print(f"  log_activity / raw insert_one              {base / raw:8.2f}")
    print(f"  with {args.streams} slow streams / without{'':<16}{loaded / base:8.2f}")
    print(f"  live delivery per activity                 {live / n * 1e6:8.1f} us")
    per_replayed = replayed / (total - 1) * 1e6
    print(f"  replay per activity ({total - 1} replayed)     {per_replayed:8.1f} us")
    print("memory:")
    print(f"  largest slow queue (max_queue {args.max_queue:<5})        {largest:8d}")
    print(f"  peak traced while logging                  {peak / 1024:8.0f} KiB")


if __name__ == "__main__":
    main()
