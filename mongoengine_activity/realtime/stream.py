"""Live activity streams, free of any web framework.

An :class:`ActivityStream` yields activities as they are logged:

- in this process, from the ``activity_logged`` signal, at once;
- from other processes, by tailing the collection every ``poll_interval``
  seconds (by ``createdAt`` then ``_id``, re-reading a short ``poll_lag`` so an
  activity committed a little late is still seen, and never twice);
- after a reconnect, from the log: ``last_event_id`` (an activity's ``_id``)
  replays every matching activity after it, in order, once, then goes live.

Memory is bounded. The signal receiver only appends to a queue of at most
``max_queue`` activities and never blocks the writer; a read of the log
holds one page (``page_size``); the ids sent within ``poll_lag`` are kept to
skip repeats, at most four times ``max_queue + page_size`` of them. When a slow consumer
lets it fill up, ``overflow`` decides:

- ``"resume"`` (default): the queue is emptied and the stream re-reads the
  log from ``poll_lag`` before the newest activity it delivered, page by
  page, skipping the ids it already sent; nothing is lost or repeated;
- ``"drop_oldest"``: the oldest queued activity is dropped and counted in
  :attr:`ActivityStream.dropped`;
- ``"disconnect"``: the next read raises :class:`StreamOverflow`; endpoints
  end the response and the client reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bson import ObjectId, json_util
from bson.errors import InvalidId

from .._bson import normalize, now_ms, truncate_ms
from ..errors import ActivityError, ValidationError
from ..feeds import _plain_id
from ..models import Activity
from ..signals import activity_logged
from ..templates import registered_template
from ..tenancy import ALL_TENANTS, read_tenant_filter

__all__ = [
    "ActivityStream",
    "StreamEvent",
    "StreamOverflow",
    "activity_payload",
    "aiter_sse",
    "create_activity_stream",
    "describe_activity",
    "iter_sse",
    "sse_comment",
]

logger = logging.getLogger(__name__)

Overflow = Literal["resume", "drop_oldest", "disconnect"]
_Key = tuple[dt.datetime, ObjectId]

_MIN_ID = ObjectId("0" * 24)
_EPOCH = dt.datetime(1970, 1, 1)
# Stored name of each filter keyword of create_activity_stream().
_FILTERS = {
    "user_id": "userId",
    "type": "type",
    "types": "type",
    "entity_type": "entity.type",
    "entities": "entity.type",
    "entity_id": "entity.id",
    "team_id": "teamId",
}


class StreamOverflow(ActivityError):
    """A slow consumer let the stream's queue overflow (``overflow="disconnect"``).

    ``last_event_id`` is the id of the last activity delivered or, when none
    was, of the newest activity in the stream's scope when it opened (the zero
    id if it had none): reconnect with it to receive everything after it from
    the log.
    """

    def __init__(self, message: str, *, last_event_id: str | None) -> None:
        super().__init__(message)
        self.last_event_id = last_event_id


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One activity on a stream; ``id`` is the activity's ``_id`` as a string."""

    id: str
    activity: Activity
    son: Mapping[str, Any] = field(repr=False)

    def payload(self) -> dict[str, Any]:
        """The activity as sent to clients: stored names, ``id`` and ``message``."""
        return activity_payload(self.activity, self.son)

    def to_json(self) -> str:
        """The payload as relaxed MongoDB Extended JSON (no value is stringified)."""
        return json_util.dumps(
            self.payload(), json_options=json_util.RELAXED_JSON_OPTIONS
        )

    def sse(self) -> str:
        """The event as a Server-Sent Events message."""
        return f"id: {self.id}\nevent: activity\ndata: {self.to_json()}\n\n"


def activity_payload(
    activity: Activity, son: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``activity`` in its stored form with ``id`` and a readable ``message``."""
    stored = dict(son if son is not None else _stored_form(activity))
    stored_id = stored.pop("_id", None)
    stored.pop("sig", None)
    return {"id": str(stored_id), **stored, "message": describe_activity(activity)}


def sse_comment(text: str = "keep-alive") -> str:
    """An SSE comment line: clients ignore it, proxies see traffic."""
    return f": {text}\n\n"


# --- readable lines


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe_change(change: Mapping[str, Any]) -> str:
    before, after = change.get("from"), change.get("to")
    path = change.get("path", "?")
    if before is None:
        return f"{path} = {_short(after)}"
    if after is None:
        return f"{path} removed (was {_short(before)})"

    return f"{path} {_short(before)} \u2192 {_short(after)}"


def describe_activity(activity: Activity, *, max_changes: int = 3) -> str:
    """A one-line description, like ``u-1 order_updated Order 42: status a → b``.

    An activity whose verb has a template (``Activity.register_template``) is
    rendered with it; others get the type, entity, user and first changes.
    """
    if registered_template(str(activity.type)) is not None:
        try:
            message = activity.render().message
        except Exception:
            logger.warning("rendering an activity failed; formatting it plainly")
            message = ""
        if message:
            return str(message)

    who = activity.user_id if activity.user_id is not None else "system"
    entity = activity.entity
    what = f"{entity.type} {entity.id}" if entity is not None else "-"
    line = f"{who} {activity.type} {what}"
    changes = list(activity.changes or ())
    if changes and not str(activity.type).endswith("_created"):
        shown = ", ".join(_describe_change(change) for change in changes[:max_changes])
        more = len(changes) - max_changes
        line += f": {shown}" + (f" (+{more} more)" if more > 0 else "")

    return line


# --- the in-process fan-out of activity_logged


class _Hub:
    """One receiver of ``activity_logged`` that feeds every open stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[ActivityStream] = set()

    def add(self, stream: ActivityStream) -> None:
        with self._lock:
            if not self._streams:
                activity_logged.connect(self._receive, weak=False)
            self._streams.add(stream)

    def remove(self, stream: ActivityStream) -> None:
        with self._lock:
            if stream not in self._streams:
                return
            self._streams.discard(stream)
            if not self._streams:
                activity_logged.disconnect(self._receive)

    def _receive(self, sender: Any, *, activity: Activity, **_: Any) -> None:
        with self._lock:
            streams = list(self._streams)
        if not streams:
            return

        son = _stored_form(activity)
        if "_id" not in son:
            return
        for stream in streams:
            stream._offer(son, activity)


_hub = _Hub()


def _stored_form(activity: Activity) -> dict[str, Any]:
    """``activity`` as it is stored, undeclared fields included: the tenant
    field is not declared on ``Activity``, so ``to_mongo()`` leaves it out and
    a tenant-scoped stream would match nothing."""
    son: dict[str, Any] = activity.to_mongo().to_dict()
    for name, value in activity._data.items():
        if name not in activity._fields and name not in son and value is not None:
            son[name] = normalize(value)

    return son


# --- filters


def _stored_filters(user_id: Any, filters: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(_FILTERS))
    if unknown:
        raise ValidationError(
            f"create_activity_stream(): unknown filter {unknown[0]!r}; use one of "
            + ", ".join(sorted(_FILTERS)),
            field=unknown[0],
        )
    wanted: dict[str, Any] = {}
    for name, value in {"user_id": user_id, **filters}.items():
        if value is None:
            continue
        # Each value is one plain value, never a query operator such as
        # {"$ne": ...} from JSON input, which would widen the stream.
        if isinstance(value, list | tuple | set | frozenset):
            value = [_plain_id(item, name) for item in value]
        else:
            value = _plain_id(value, name)
        wanted[_FILTERS[name]] = value

    return wanted


def _lookup(son: Mapping[str, Any], path: str) -> Any:
    value: Any = son
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)

    return value


def _equal(value: Any, expected: Any) -> bool:
    # As MongoDB compares: True is not 1, though Python says True == 1.
    if isinstance(value, bool) != isinstance(expected, bool):
        return False

    return bool(value == expected)


def _matches(son: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    for path, expected in wanted.items():
        value = _lookup(son, path)
        if isinstance(expected, list):
            if not any(_equal(value, item) for item in expected):
                return False
        elif not _equal(value, expected):
            return False

    return True


def _query(wanted: Mapping[str, Any]) -> dict[str, Any]:
    return {
        path: {"$in": value} if isinstance(value, list) else value
        for path, value in wanted.items()
    }


def _after(key: _Key) -> dict[str, Any]:
    created, stored_id = key
    return {
        "$or": [
            {"createdAt": {"$gt": created}},
            {"createdAt": created, "_id": {"$gt": stored_id}},
        ]
    }


def _key(son: Mapping[str, Any]) -> _Key:
    # Naive UTC whatever the client's tz_aware, so keys always compare.
    return truncate_ms(son["createdAt"]), son["_id"]


# --- the stream


class ActivityStream:
    """Activities as they are logged; iterate it sync or async, then close it.

    Create it with :func:`create_activity_stream`. Use it as a context manager
    (``with`` or ``async with``) so it stops receiving when you are done.
    """

    def __init__(
        self,
        *,
        user_id: Any = None,
        last_event_id: str | None = None,
        poll_interval: float | None = None,
        poll_lag: float = 2.0,
        max_queue: int = 1000,
        overflow: Overflow = "resume",
        page_size: int = 200,
        tenant: Any = None,
        **filters: Any,
    ) -> None:
        if max_queue < 1 or page_size < 1:
            raise ValidationError(
                "create_activity_stream(): max_queue and page_size must be positive",
                field="max_queue" if max_queue < 1 else "page_size",
            )
        if overflow not in ("resume", "drop_oldest", "disconnect"):
            raise ValidationError(
                f"create_activity_stream(): overflow {overflow!r} must be "
                "'resume', 'drop_oldest' or 'disconnect'",
                field="overflow",
            )
        # Scoped to the reader's tenant, like every read; raises under strict
        # isolation without one.
        scope = read_tenant_filter(tenant, quiet=tenant is ALL_TENANTS)
        self._wanted = {**_stored_filters(user_id, filters), **scope}
        self._poll_interval = poll_interval
        self._poll_lag = dt.timedelta(seconds=poll_lag)
        self._max_queue = max_queue
        self._overflow: Overflow = overflow
        self._page_size = page_size

        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[dict[str, Any], Activity]] = (
            collections.deque()
        )
        self._overflowed = False
        self._waker: Callable[[], None] | None = None
        self._closed = False
        self.dropped = 0
        """Activities dropped by ``overflow="drop_oldest"``."""

        self._pending: collections.deque[Mapping[str, Any]] = collections.deque()
        self._scan_from: _Key | None = None
        self._seen: collections.OrderedDict[ObjectId, dt.datetime] = (
            collections.OrderedDict()
        )
        self._next_poll = (
            time.monotonic() + poll_interval if poll_interval is not None else None
        )

        start = now_ms()
        # A fresh ObjectId sorts after every id this process made before, so
        # a catch-up never includes an activity logged before the stream
        # opened in the same millisecond.
        self._last: _Key = (start, ObjectId())
        self._last_id: str | None = None
        self._high = start
        _hub.add(self)
        if last_event_id is not None:
            self._last = self._resume_key(last_event_id)
            self._last_id = last_event_id
            self._high = self._last[0]
            self._scan_from = self._last
        # Nothing before this key is ever sent: the stream's start, or the
        # activity it resumes after.
        self._floor = self._last
        self._origin = self._last

    # -- set-up

    def _resume_key(self, last_event_id: str) -> _Key:
        try:
            stored_id = ObjectId(str(last_event_id).strip())
        except (InvalidId, TypeError):
            self.close()
            raise ValidationError(
                f"create_activity_stream(): last_event_id {last_event_id!r} is not "
                "an activity id",
                field="last_event_id",
            ) from None
        if stored_id == _MIN_ID:
            # Given by a stream that overflowed when its scope had no activity
            # yet: replay all of it.
            return _EPOCH, _MIN_ID
        stored = Activity._get_collection().find_one(
            {"_id": stored_id}, {"createdAt": 1}
        )
        if stored is not None and isinstance(stored.get("createdAt"), dt.datetime):
            return truncate_ms(stored["createdAt"]), stored_id

        # Pruned or expired: replay from the second its id was made.
        logger.warning("resuming after an activity no longer in the log")
        generated = stored_id.generation_time.replace(tzinfo=None)
        return generated, stored_id

    # -- the producer side (any thread)

    def _offer(self, son: dict[str, Any], activity: Activity) -> None:
        if not _matches(son, self._wanted):
            return

        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self._max_queue:
                if self._overflow == "drop_oldest":
                    self._queue.popleft()
                    self.dropped += 1
                    if self.dropped == 1:
                        logger.warning(
                            "an activity stream's consumer is too slow: dropping "
                            "its oldest activities (see ActivityStream.dropped)"
                        )
                else:
                    self._queue.clear()
                    self._overflowed = True
            if not self._overflowed:
                self._queue.append((son, activity))
            self._cond.notify_all()
            waker = self._waker
        if waker is not None:
            waker()

    # -- the consumer side

    def _start_id(self) -> str:
        """Where a client that got nothing yet resumes: the newest activity in
        scope when the stream opened, or the zero id if there was none."""
        created, stored_id = self._origin
        before = {
            "$or": [
                {"createdAt": {"$lt": created}},
                {"createdAt": created, "_id": {"$lte": stored_id}},
            ]
        }
        newest = Activity._get_collection().find_one(
            {"$and": [_query(self._wanted), before]},
            {"_id": 1},
            sort=[("createdAt", -1), ("_id", -1)],
        )
        return str(newest["_id"] if newest is not None else _MIN_ID)

    @property
    def last_event_id(self) -> str | None:
        """The id of the last activity delivered (or resumed after)."""
        return self._last_id

    def _needs_database(self) -> bool:
        return (
            self._scan_from is not None
            or (
                self._overflowed
                and (self._overflow == "resume" or self._last_id is None)
            )
            or (self._next_poll is not None and time.monotonic() >= self._next_poll)
        )

    def _deliver(
        self, son: Mapping[str, Any], activity: Activity | None
    ) -> StreamEvent:
        key = _key(son)
        self._seen[key[1]] = key[0]
        self._last = max(self._last, key)
        self._high = max(self._high, key[0])
        self._last_id = str(key[1])
        self._forget_old()
        if activity is None:
            activity = Activity._from_son(dict(son))
        return StreamEvent(id=self._last_id, activity=activity, son=son)

    def _forget_old(self) -> None:
        budget = self._max_queue + self._page_size
        if len(self._seen) <= budget:
            return

        # Ids are kept in delivery order, which is about createdAt order.
        horizon = self._high - self._poll_lag
        while self._seen and next(iter(self._seen.values())) < horizon:
            self._seen.popitem(last=False)
        # A burst within the lag: forget the oldest ids, and never read the
        # log before them again, so nothing forgotten can be sent twice.
        while len(self._seen) > 4 * budget:
            stored_id, created = self._seen.popitem(last=False)
            self._floor = max(self._floor, (created, stored_id))

    def _rescan_key(self) -> _Key:
        """Where a catch-up or a poll reads from: ``poll_lag`` before the newest
        activity delivered, since writers in other threads or processes may
        commit an activity after a newer one; ids already sent are skipped."""
        return max(self._floor, (self._high - self._poll_lag, _MIN_ID))

    def _scan_page(self) -> None:
        assert self._scan_from is not None
        query = {"$and": [_query(self._wanted), _after(self._scan_from)]}
        page = list(
            Activity._get_collection()
            .find(query)
            .sort([("createdAt", 1), ("_id", 1)])
            .limit(self._page_size)
        )
        self._scan_from = _key(page[-1]) if len(page) == self._page_size else None
        self._pending.extend(son for son in page if son["_id"] not in self._seen)

    def _take(self, *, database: bool = True) -> StreamEvent | None:
        """The next activity if one is ready, reading the log when due.

        With ``database=False`` it returns ``None`` instead of reading the log
        (the event loop's thread never waits on MongoDB).
        """
        polled = False
        while True:
            if self._pending:
                son = self._pending.popleft()
                if son["_id"] not in self._seen:
                    return self._deliver(son, None)
                continue
            if self._scan_from is not None:
                if not database:
                    return None
                self._scan_page()
                continue

            with self._cond:
                if self._closed:
                    return None
                disconnect = self._overflowed and self._overflow == "disconnect"
                if self._overflowed and not disconnect:
                    self._overflowed = False
                    self._queue.clear()
                    self._scan_from = self._rescan_key()
                    continue
                item = self._queue.popleft() if self._queue else None
            if disconnect:
                if self._last_id is None and not database:
                    return None
                # The resume point is read outside the lock: writers offering
                # activities never wait on MongoDB.
                resume_id = self._last_id or self._start_id()
                self._overflowed = False
                raise StreamOverflow(
                    "the activity stream's queue overflowed; reconnect "
                    "with the last event id to resume",
                    last_event_id=resume_id,
                )
            if item is not None:
                son, activity = item
                if son["_id"] not in self._seen:
                    return self._deliver(son, activity)
                continue

            if (
                database
                and not polled
                and self._next_poll is not None
                and time.monotonic() >= self._next_poll
            ):
                assert self._poll_interval is not None
                polled = True
                self._next_poll = time.monotonic() + self._poll_interval
                self._scan_from = self._rescan_key()
                continue

            return None

    def _wait_time(self, deadline: float | None) -> float | None:
        now = time.monotonic()
        waits = [moment - now for moment in (deadline, self._next_poll) if moment]
        return max(0.0, min(waits)) if waits else None

    def next(self, timeout: float | None = None) -> StreamEvent | None:
        """Block until the next activity; ``None`` when ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        while not self._closed:
            event = self._take()
            if event is not None:
                return event
            if deadline is not None and time.monotonic() >= deadline:
                return None
            with self._cond:
                if not (self._queue or self._overflowed or self._closed):
                    self._cond.wait(self._wait_time(deadline))

        return None

    async def anext(self, timeout: float | None = None) -> StreamEvent | None:
        """Await the next activity; ``None`` when ``timeout`` seconds pass.

        Reads of the log run in a worker thread, so the event loop never blocks.
        """
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def wake() -> None:
            # The loop may have ended while a writer in another thread offers.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)

        self._waker = wake
        deadline = time.monotonic() + timeout if timeout is not None else None
        try:
            while not self._closed:
                ready.clear()
                if self._needs_database():
                    event = await asyncio.to_thread(self._take)
                else:
                    event = self._take(database=False)
                if event is not None:
                    return event
                if self._scan_from is not None:
                    continue
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                with self._cond:
                    idle = not (self._queue or self._overflowed or self._closed)
                if idle:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ready.wait(), self._wait_time(deadline))
        finally:
            self._waker = None

        return None

    def __iter__(self) -> Iterator[StreamEvent]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while True:
            event = await self.anext()
            if event is None:
                return
            yield event

    def close(self) -> None:
        """Stop receiving; a blocked ``next()`` returns ``None``."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            waker = self._waker
        _hub.remove(self)
        if waker is not None:
            waker()

    @property
    def closed(self) -> bool:
        return self._closed

    def queued(self) -> int:
        """How many activities wait in the in-process queue."""
        return len(self._queue)

    def __enter__(self) -> ActivityStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ActivityStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def create_activity_stream(
    user_id: Any = None,
    *,
    last_event_id: str | None = None,
    poll_interval: float | None = None,
    poll_lag: float = 2.0,
    max_queue: int = 1000,
    overflow: Overflow = "resume",
    page_size: int = 200,
    tenant: Any = None,
    **filters: Any,
) -> ActivityStream:
    """Open a live stream of activities matching ``user_id`` and ``filters``.

    Filters: ``type`` (or ``types``), ``entity_type`` (or ``entities``),
    ``entity_id``, ``team_id``; a list matches any of its values. Iterate the
    stream with ``for`` or ``async for``; close it (or use ``with``) when done.

    - ``last_event_id``: replay from the log every matching activity after
      this one, in order, then continue live.
    - ``poll_interval``: also tail the collection every so many seconds, to
      see activities logged by other processes; ``None`` (default) listens
      to this process only.
    - ``max_queue`` and ``overflow``: the bound on activities waiting for a
      slow consumer and what happens past it (see the module docs).
    - ``tenant``: with multi-tenancy on, the stream is scoped to the tenant
      in the current context (under strict isolation, opening it without one
      raises ``TenantRequiredError``); ``tenant=`` binds one instead, and
      ``ALL_TENANTS`` reads every tenant.
    """
    return ActivityStream(
        user_id=user_id,
        last_event_id=last_event_id,
        poll_interval=poll_interval,
        poll_lag=poll_lag,
        max_queue=max_queue,
        overflow=overflow,
        page_size=page_size,
        tenant=tenant,
        **filters,
    )


# --- Server-Sent Events


def iter_sse(
    stream: ActivityStream, *, heartbeat: float = 15.0, retry_ms: int | None = 3000
) -> Iterator[str]:
    """SSE messages for ``stream``: one per activity, a comment every ``heartbeat``.

    Ends (closing the stream) when the stream overflows with
    ``overflow="disconnect"``, after an id-only message naming where to resume;
    the client then reconnects with that ``Last-Event-ID``.
    """
    try:
        if retry_ms is not None:
            yield f"retry: {retry_ms}\n\n"
        while not stream.closed:
            try:
                event = stream.next(timeout=heartbeat)
            except StreamOverflow as overflow:
                logger.warning("closing an SSE response: its client is too slow")
                # An id-only message sets the browser's Last-Event-ID, so it
                # resumes there even when no activity reached it.
                yield f"id: {overflow.last_event_id}\n\n"
                return
            yield event.sse() if event is not None else sse_comment()
    finally:
        stream.close()


async def aiter_sse(
    stream: ActivityStream, *, heartbeat: float = 15.0, retry_ms: int | None = 3000
) -> AsyncIterator[str]:
    """The async twin of :func:`iter_sse`."""
    try:
        if retry_ms is not None:
            yield f"retry: {retry_ms}\n\n"
        while not stream.closed:
            try:
                event = await stream.anext(timeout=heartbeat)
            except StreamOverflow as overflow:
                logger.warning("closing an SSE response: its client is too slow")
                # An id-only message sets the browser's Last-Event-ID, so it
                # resumes there even when no activity reached it.
                yield f"id: {overflow.last_event_id}\n\n"
                return
            yield event.sse() if event is not None else sse_comment()
    finally:
        stream.close()


def open_from_request(
    last_event_id: str | None, options: Mapping[str, Any]
) -> ActivityStream:
    """Open a stream for an endpoint; an unusable ``Last-Event-ID`` starts live."""
    if last_event_id:
        try:
            return create_activity_stream(last_event_id=last_event_id, **options)
        except ValidationError as error:
            if error.field != "last_event_id":
                raise
            logger.warning("ignoring a Last-Event-ID that is not an activity id")

    return create_activity_stream(**options)
