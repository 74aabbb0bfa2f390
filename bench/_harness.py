"""What the benchmarks share: arguments, connecting, timing and the table."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import mongoengine
import pymongo


def parse_args(
    description: str, *, docs: int, repeat: int, batch: int | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--uri",
        default=os.environ.get("MONGODB_URI"),
        help="MongoDB URI (default: MONGODB_URI, else the embedded mongomock)",
    )
    parser.add_argument(
        "--db", default="mongoengine_activity_bench", help="database (dropped after)"
    )
    parser.add_argument(
        "--docs", type=int, default=docs, help=f"documents (default {docs})"
    )
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"repetitions (default {repeat})"
    )
    if batch is not None:
        parser.add_argument(
            "--batch", type=int, default=batch, help=f"batch size (default {batch})"
        )
    parser.add_argument(
        "--clock",
        choices=("auto", "cpu", "wall"),
        default="auto",
        help="cpu: this process's CPU time (steady on a busy machine; mongomock "
        "runs in-process); wall: elapsed time (needed with a server); "
        "auto: cpu on mongomock, wall with --uri",
    )
    return parser.parse_args()


_clock: Callable[[], float] = time.perf_counter


def connect(uri: str | None, db: str, *, clock: str = "auto") -> str:
    """Connect the default alias and pick the clock; return a label naming both."""
    global _clock
    use_cpu = clock == "cpu" or (clock == "auto" and not uri)
    _clock = time.process_time if use_cpu else time.perf_counter
    mongoengine.disconnect()
    if uri:
        mongoengine.connect(db=db, host=uri, uuidRepresentation="standard")
        info = mongoengine.get_connection().server_info()
        backend = f"MongoDB {info['version']}"
    else:
        import mongomock

        mongoengine.connect(
            db=db,
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )
        backend = f"mongomock {mongomock.__version__}"
    clock_name = "CPU time" if use_cpu else "wall time"
    return (
        f"{clock_name}; {backend}, pymongo {pymongo.__version__}, "
        f"mongoengine {mongoengine.__version__}, Python {platform.python_version()}"
    )


def drop(db: str) -> None:
    mongoengine.get_connection().drop_database(db)
    mongoengine.disconnect()


def timed(run: Callable[[], object]) -> float:
    """Seconds ``run`` takes, after a collection so no earlier garbage is paid."""
    gc.collect()
    start = _clock()
    run()
    return _clock() - start


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def print_table(
    title: str,
    rows: Sequence[tuple[str, float, float, float | None]],
    *,
    per: int,
    unit: str,
) -> None:
    """Rows of (name, ours seconds, baseline seconds, target ratio).

    Besides the totals and their ratio, ``extra us/<unit>`` is what ours costs
    more per operation, in microseconds: the absolute overhead, which does not
    depend on how fast the backend is.
    """
    print(title)
    print(
        f"  {'':<30}{'ours ms':>9}{'base ms':>9}{'extra us/' + unit:>15}"
        f"{'ratio':>8}{'target':>9}"
    )
    for name, ours, base, target in rows:
        ratio = ours / base
        verdict = ""
        if target is not None:
            verdict = f"{'<= ' + format(target, '.2f'):>9}"
            verdict += "  ok" if ratio <= target else "  MISSED"
        print(
            f"  {name:<30}{ours * 1e3:>9.1f}{base * 1e3:>9.1f}"
            f"{(ours - base) / per * 1e6:>15.1f}{ratio:>8.3f}{verdict}"
        )
