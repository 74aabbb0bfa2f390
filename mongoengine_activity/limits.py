"""Dedup windows and rate limits: step 6 of the write path.

Two interchangeable backends decide whether an activity may be written:

- :class:`MemoryLimiter` (the default) keeps its windows in this process, under
  a lock. It is exact for one process and knows nothing of others.
- :class:`MongoLimiter` keeps them in a small helper collection
  (``<collection>_limits``), decided by atomic single-document operations and
  the unique ``_id``, so the limits hold across every process sharing the
  database.

Both use the same windows:

- **dedup**: the same activity (entity, type, user and changes) is written
  once per ``dedup_window``, counted from the first one written; a repeat
  inside the window is dropped and does not extend it.
- **rate limit**: at most ``max_per_minute`` activities per user (or per
  entity when there is no user) per ``burst_window``. A window opens with the
  first activity and closes ``burst_window`` later; the next activity after
  that opens a new one.

A dropped activity is never silent: it is logged at WARNING (without field
values) and sent on :data:`~mongoengine_activity.signals.activity_dropped`
with ``reason="dedup"`` or ``reason="rate_limit"``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError

from ._bson import digest, now_ms
from .options import ActivityOptions, current_settings
from .tenancy import tenant_policy

__all__ = [
    "Clock",
    "Limiter",
    "MemoryLimiter",
    "MongoLimiter",
    "check_limits",
    "current_limiter",
    "use_limiter",
]

Clock = Callable[[], dt.datetime]


class Limiter(Protocol):
    """Decides whether one more activity fits a dedup window or a rate limit."""

    def first_in_window(self, key: str, window: dt.timedelta) -> bool:
        """True (and the window opens) unless ``key`` was seen within ``window``."""
        ...

    def take(self, key: str, limit: int, window: dt.timedelta) -> bool:
        """True (and one slot is used) while ``key`` has room in its window."""
        ...


class MemoryLimiter:
    """Dedup windows and rate limits for one process (the default).

    ``clock`` returns naive UTC datetimes; tests inject a fake one.
    """

    def __init__(self, *, clock: Clock = now_ms) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, dt.datetime] = {}
        self._windows: dict[str, tuple[dt.datetime, int]] = {}
        self._calls = 0

    def first_in_window(self, key: str, window: dt.timedelta) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            opened = self._seen.get(key)
            if opened is not None and now < opened + window:
                return False
            self._seen[key] = now

            return True

    def take(self, key: str, limit: int, window: dt.timedelta) -> bool:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            opened, used = self._windows.get(key, (now, 0))
            if now >= opened + window:
                opened, used = now, 0
            if used >= limit:
                return False
            self._windows[key] = (opened, used + 1)

            return True

    def _sweep(self, now: dt.datetime) -> None:
        # Forget long-closed windows now and then, so memory stays bounded by
        # the keys active within the longest window.
        self._calls += 1
        if self._calls % 10_000:
            return
        horizon = now - dt.timedelta(days=1)
        self._seen = {key: at for key, at in self._seen.items() if at > horizon}
        self._windows = {
            key: value for key, value in self._windows.items() if value[0] > horizon
        }


class MongoLimiter:
    """Dedup windows and rate limits shared by every process using the database.

    State lives in the collection ``collection`` (``<activities>_limits`` by
    default), one small document per key, expired by a TTL index. Every
    decision is one or a few atomic single-document operations; two processes
    racing on the same key are ordered by the unique ``_id``.
    """

    def __init__(self, *, collection: str | None = None, clock: Clock = now_ms) -> None:
        self._name = collection
        self._clock = clock
        self._indexed: set[str] = set()

    def _collection(self) -> Any:
        from .models import Activity

        name = self._name or f"{current_settings().collection}_limits"
        collection = Activity._get_db()[name]
        if name not in self._indexed:
            collection.create_index("expiresAt", expireAfterSeconds=0)
            self._indexed.add(name)

        return collection

    def first_in_window(self, key: str, window: dt.timedelta) -> bool:
        collection = self._collection()
        now = self._clock()
        state = {"until": now + window, "expiresAt": _expiry(window)}
        # Matches only a closed window: it is reopened. An open one does not
        # match, so the upsert collides with it on _id and the activity is a
        # repeat.
        try:
            collection.update_one(
                {"_id": f"dedup:{key}", "until": {"$lte": now}},
                {"$set": state},
                upsert=True,
            )
        except DuplicateKeyError:
            return False

        return True

    def take(self, key: str, limit: int, window: dt.timedelta) -> bool:
        collection = self._collection()
        key = f"rate:{key}"
        for _ in range(5):
            now = self._clock()
            room = collection.update_one(
                {"_id": key, "until": {"$gt": now}, "used": {"$lt": limit}},
                {"$inc": {"used": 1}},
            )
            if room.modified_count:
                return True

            reopened = collection.update_one(
                {"_id": key, "until": {"$lte": now}},
                {
                    "$set": {
                        "until": now + window,
                        "expiresAt": _expiry(window),
                        "used": 1,
                    }
                },
            )
            if reopened.modified_count:
                return True

            try:
                collection.insert_one(
                    {
                        "_id": key,
                        "until": now + window,
                        "expiresAt": _expiry(window),
                        "used": 1,
                    }
                )
            except DuplicateKeyError:
                # Either the window is full, or another process opened or
                # reopened it between our steps: look again.
                if collection.count_documents(
                    {"_id": key, "until": {"$gt": now}, "used": {"$gte": limit}}
                ):
                    return False
                continue

            return True

        return False


def _expiry(window: dt.timedelta) -> dt.datetime:
    # The TTL monitor runs on the server's wall clock, whatever clock decides
    # the windows; a minute's margin keeps an open window's state alive.
    return now_ms() + window + dt.timedelta(minutes=1)


_limiter_lock = threading.Lock()
_limiter: Limiter = MemoryLimiter()


def use_limiter(limiter: Limiter) -> Limiter:
    """Make ``limiter`` decide dedup windows and rate limits; returns the old one.

    ``use_limiter(MongoLimiter())`` shares the limits across processes.
    """
    global _limiter
    with _limiter_lock:
        previous, _limiter = _limiter, limiter

    return previous


def current_limiter() -> Limiter:
    """The limiter in force (a :class:`MemoryLimiter` unless changed)."""
    return _limiter


def _tenant_of(son: Mapping[str, Any]) -> Any:
    policy = tenant_policy()
    return None if policy is None else son.get(policy.field)


def dedup_key(son: Mapping[str, Any]) -> str:
    """What makes two activities "the same": tenant, entity, type, user and
    changes."""
    entity = son["entity"]
    changes = son.get("changes") or []
    return digest(
        [
            _tenant_of(son),
            entity["type"],
            entity["id"],
            son["type"],
            son.get("userId"),
            changes,
        ]
    )


def _rate_key(son: Mapping[str, Any]) -> str:
    """Who a rate limit counts: the user, or the entity without one, within
    the activity's tenant (two tenants' user ids never share a limit)."""
    tenant = _tenant_of(son)
    user = son.get("userId")
    if user is not None:
        return digest(["user", tenant, user])

    return digest(["entity", tenant, son["entity"]["type"], son["entity"]["id"]])


def check_limits(son: Mapping[str, Any], options: ActivityOptions | None) -> str | None:
    """Return why ``son`` must be dropped (``"dedup"``, ``"rate_limit"``) or None."""
    if options is None or (options.dedup_window is None and options.rate_limit is None):
        return None

    limiter = _limiter
    if options.dedup_window is not None and not limiter.first_in_window(
        dedup_key(son), options.dedup_window
    ):
        return "dedup"
    rate = options.rate_limit
    if rate is not None and not limiter.take(
        _rate_key(son), rate.max_per_minute, rate.burst_window
    ):
        return "rate_limit"

    return None
