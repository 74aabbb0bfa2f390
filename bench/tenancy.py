"""What tenant scoping costs on a feed query.

Runs the same newest-first user feed (one page) three ways in one process:

- raw: pymongo ``find({tenant, userId}).sort(createdAt).limit(page)``;
- off: ``Activity.objects(...)`` with multi-tenancy off, the tenant as a
  plain filter (what an application does by hand);
- scoped: ``Activity.objects(user_id=...)`` under strict multi-tenancy, the
  tenant taken from ``activity_context``.

and prints each one's mean time per query and its ratio to raw.

    python bench/tenancy.py                 # mongomock, small
    python bench/tenancy.py --uri mongodb://localhost:27017 --activities 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import mongoengine

import mongoengine_activity as ma
from mongoengine_activity import Activity, activity_context

FIELD = "organizationId"


def connect(uri: str | None) -> str:
    name = f"bench_tenancy_{uuid.uuid4().hex[:8]}"
    if uri:
        mongoengine.connect(db=name, host=uri, uuidRepresentation="standard")
    else:
        import mongomock

        mongoengine.connect(
            db=name,
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )
    return name


def fill(activities: int, tenants: int, users: int) -> None:
    rng = random.Random(7)
    start = dt.datetime(2026, 1, 1)
    batch = [
        {
            FIELD: f"t{rng.randrange(tenants)}",
            "userId": f"u{rng.randrange(users)}",
            "entity": {"type": "Order", "id": index},
            "type": "order_updated",
            "meta": {},
            "createdAt": start + dt.timedelta(seconds=index),
            "changes": [],
            "context": {},
        }
        for index in range(activities)
    ]
    Activity._get_collection().insert_many(batch)


def timed(run: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return statistics.mean(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a MongoDB server; mongomock without it")
    parser.add_argument("--activities", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    name = connect(args.uri)
    # mongomock cannot build a partial unique index over existing documents;
    # its warning is not what this measures.
    logging.getLogger("mongoengine_activity").setLevel(logging.ERROR)
    try:
        fill(args.activities, args.tenants, args.users)
        collection = Activity._get_collection()
        tenant, user = "t3", "u7"

        def raw() -> list[Any]:
            cursor = collection.find({FIELD: tenant, "userId": user})
            return list(cursor.sort([("createdAt", -1), ("_id", -1)]).limit(args.page))

        def scoped() -> list[Any]:
            with activity_context(tenant=tenant):
                query = Activity.objects(user_id=user)
                return list(
                    query.order_by("-created_at", "-id").limit(args.page).as_pymongo()
                )

        def by_hand() -> list[Any]:
            query = Activity.objects(user_id=user, __raw__={FIELD: tenant})
            return list(
                query.order_by("-created_at", "-id").limit(args.page).as_pymongo()
            )

        def build() -> Any:
            with activity_context(tenant=tenant):
                return Activity.objects(user_id=user)._query

        assert by_hand() == raw()
        results = {"raw": timed(raw, args.repeat), "off": timed(by_hand, args.repeat)}
        build_off = timed(build, 2000)
        ma.configure(multi_tenant=True, tenant_field=FIELD)
        assert scoped() == raw()
        results["scoped"] = timed(scoped, args.repeat)
        build_on = timed(build, 2000)
    finally:
        ma.configure(reset=True)
        mongoengine.get_connection().drop_database(name)
        mongoengine.disconnect()

    backend = "server" if args.uri else "mongomock"
    print(
        f"{backend}: {args.activities} activities, {args.tenants} tenants, "
        f"page {args.page}, {args.repeat} queries each"
    )
    for label in ("raw", "off", "scoped"):
        mean = results[label]
        print(f"{label:>7}: {mean * 1e3:8.3f} ms/query  x{mean / results['raw']:.2f}")
    print(
        f"building the query: {build_off * 1e6:.1f} us off, {build_on * 1e6:.1f} us "
        f"scoped (x{build_on / build_off:.2f})"
    )


if __name__ == "__main__":
    main()
