"""Change streams: writes made outside MongoEngine become activities too.

:class:`ChangeStreamTracker` watches the collections of tracked models (those
with ``meta["activity"]["change_streams"]["enabled"]``, or the models given)
and logs each insert, update, replace and delete that the ODM did not log
itself: a shell session, a migration script, a service in another language.
It needs a replica set or a sharded cluster (MongoDB has no change streams on
a standalone server).

How it stays exact:

- **Diffs.** With pre-images enabled on a collection
  (``changeStreamPreAndPostImages``) the tracker asks for
  ``fullDocumentBeforeChange`` and records real ``from`` values. Without
  them it records the update description's ``updatedFields`` and
  ``removedFields`` with ``from`` unknown (``None``), and says so in the
  activity's ``context`` (``preImage: False``).
- **Restarts.** The resume token is saved in a small collection
  (``activity_change_stream_tokens``) after every event, and the stream
  resumes after it. Each activity's ``event_id`` is derived from the change
  event's own id, so an event replayed after a crash between the write and
  the token save is written once (the unique index makes it a no-op).
- **No double logging.** The ODM writes its own activity for every save and
  delete. For each change event the tracker looks for an activity of the same
  entity and operation, not written by a change stream, created within
  ``match_window`` of the event, that no earlier event has claimed; if it
  finds one, the write was the ODM's and is skipped. An event with no match
  waits ``grace`` seconds (the ODM writes its activity just after its write)
  before it is logged. This needs no marker in your documents and no extra
  write per save; its limits are in the docs' Limitations page.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bson import ObjectId, Timestamp
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from ._bson import normalize, now_ms, truncate_ms
from .diff import Change, diff
from .errors import ActivityError
from .models import Activity
from .options import ActivityOptions, snake_case
from .tenancy import document_tenant
from .tracking import _MISSING as _ABSENT
from .tracking import (
    TrackedDocument,
    _field_value,
    _get_path,
    _tracked,
    stored_changes,
)
from .writer import WriteRequest, build_son, on_error_for, write_activity

__all__ = ["ChangeStreamTracker", "tracked_models"]

logger = logging.getLogger(__name__)

SOURCE = "changeStream"
TOKENS_COLLECTION = "activity_change_stream_tokens"

_KINDS = {
    "insert": ("create",),
    "update": ("update",),
    "replace": ("update", "create"),
    "delete": ("delete",),
}


class ChangeStreamLike(Protocol):
    """What the tracker needs of a pymongo ``ChangeStream``."""

    @property
    def resume_token(self) -> Mapping[str, Any] | None: ...

    def try_next(self) -> Mapping[str, Any] | None: ...

    def close(self) -> None: ...


Watch = Callable[..., ChangeStreamLike]


def _default_watch(collection: Collection[Any], **kwargs: Any) -> ChangeStreamLike:
    stream: ChangeStreamLike = collection.watch(**kwargs)
    return stream


def tracked_models() -> list[type[TrackedDocument]]:
    """Every concrete tracked model with change streams enabled."""
    found: list[type[TrackedDocument]] = []
    pending = list(TrackedDocument.__subclasses__())
    while pending:
        model = pending.pop(0)
        pending.extend(model.__subclasses__())
        if model._meta.get("abstract") or model in found:
            continue
        if model.activity_options().change_streams.enabled:
            found.append(model)

    return found


@dataclass(slots=True)
class _Watched:
    model: type[TrackedDocument]
    collection: Collection[Any]
    key: str
    pre_images: bool
    stream: ChangeStreamLike | None = None
    saved_token: Mapping[str, Any] | None = None
    pending: collections.deque[tuple[float, Mapping[str, Any]]] = field(
        default_factory=collections.deque
    )


def _event_time(event: Mapping[str, Any]) -> dt.datetime:
    wall = event.get("wallTime")
    if isinstance(wall, dt.datetime):
        return truncate_ms(wall)
    cluster = event.get("clusterTime")
    if isinstance(cluster, Timestamp):
        return truncate_ms(cluster.as_datetime())

    return now_ms()


def event_id_for(namespace: str, event: Mapping[str, Any]) -> str:
    """A stable idempotency key for a change event (its id is its resume token)."""
    token = event.get("_id")
    data = token.get("_data") if isinstance(token, Mapping) else token
    raw = f"{namespace}|{data!s}".encode()
    return "cs:" + hashlib.sha256(raw).hexdigest()[:40]


class ChangeStreamTracker:
    """Logs writes to tracked collections that were made outside MongoEngine.

    ``models`` defaults to :func:`tracked_models`. ``name`` tells trackers
    apart in the token collection (run one tracker per name). ``watch`` opens
    a change stream for a collection (``collection.watch`` by default; tests
    pass a fake). ``pre_images`` forces or forbids ``fullDocumentBeforeChange``;
    ``None`` asks the server whether the collection keeps pre-images. At most
    ``max_pending`` events per collection are read ahead of those decided.

    Call :meth:`poll` from your own loop, or :meth:`run` in a thread::

        tracker = ChangeStreamTracker()
        threading.Thread(target=tracker.run, args=(stop,), daemon=True).start()
    """

    def __init__(
        self,
        models: Iterable[type[TrackedDocument]] | None = None,
        *,
        name: str = "default",
        match_window: float = 5.0,
        grace: float = 2.0,
        pre_images: bool | None = None,
        watch: Watch | None = None,
        tokens_collection: str = TOKENS_COLLECTION,
        max_pending: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._models = list(models) if models is not None else tracked_models()
        self._name = name
        self._window = dt.timedelta(seconds=match_window)
        self._grace = grace
        self._pre_images = pre_images
        self._watch = watch or _default_watch
        self._tokens_name = tokens_collection
        self._clock = clock
        self._max_pending = max_pending
        self._claimed: collections.OrderedDict[ObjectId, float] = (
            collections.OrderedDict()
        )
        self._watched: list[_Watched] | None = None
        self.logged = 0
        """Activities this tracker wrote."""
        self.skipped = 0
        """Events skipped: the ODM had logged them, or nothing tracked changed."""
        self.failed = 0
        """Events that could not become an activity (logged as warnings)."""

    # -- set-up

    @property
    def models(self) -> list[type[TrackedDocument]]:
        return list(self._models)

    def _tokens(self) -> Collection[Any]:
        tokens: Collection[Any] = Activity._get_db()[self._tokens_name]
        return tokens

    def _has_pre_images(self, collection: Collection[Any]) -> bool:
        if self._pre_images is not None:
            return self._pre_images
        try:
            for info in collection.database.list_collections(
                filter={"name": collection.name}
            ):
                images = info.get("options", {}).get("changeStreamPreAndPostImages")
                return bool(images and images.get("enabled"))
        except (PyMongoError, NotImplementedError, TypeError):
            logger.debug("could not tell whether the collection keeps pre-images")

        return False

    def _setup(self) -> list[_Watched]:
        if self._watched is None:
            watched = []
            for model in self._models:
                collection = model._get_collection()
                namespace = f"{collection.database.name}.{collection.name}"
                stored = self._tokens().find_one({"_id": f"{self._name}:{namespace}"})
                watched.append(
                    _Watched(
                        model=model,
                        collection=collection,
                        key=f"{self._name}:{namespace}",
                        pre_images=self._has_pre_images(collection),
                        saved_token=stored.get("token") if stored else None,
                    )
                )
            self._watched = watched

        return self._watched

    def _open(self, watched: _Watched) -> ChangeStreamLike:
        if watched.stream is None:
            options = watched.model.activity_options().change_streams
            kwargs: dict[str, Any] = {"full_document": options.full_document}
            if watched.pre_images:
                kwargs["full_document_before_change"] = "whenAvailable"
            if watched.saved_token is not None:
                kwargs["resume_after"] = watched.saved_token
            watched.stream = self._watch(watched.collection, **kwargs)

        return watched.stream

    def _save_token(self, watched: _Watched, token: Mapping[str, Any] | None) -> None:
        if token is None or token == watched.saved_token:
            return

        self._tokens().replace_one(
            {"_id": watched.key},
            {"_id": watched.key, "token": dict(token), "updatedAt": now_ms()},
            upsert=True,
        )
        watched.saved_token = dict(token)

    # -- the loop

    def poll(self) -> int:
        """Read every event available now and log what is due; returns how many
        activities were written. Events waiting for the ``grace`` period stay
        pending (and unacknowledged) until a later call."""
        written = 0
        for watched in self._setup():
            try:
                stream = self._open(watched)
                # Bounded, so a busy collection cannot grow the pending queue
                # without limit or starve the others.
                while len(watched.pending) < self._max_pending:
                    event = stream.try_next()
                    if event is None:
                        break
                    watched.pending.append((self._clock(), event))
                written += self._decide(watched)
                if not watched.pending:
                    self._save_token(watched, stream.resume_token)
            except PyMongoError as error:
                logger.warning(
                    "change stream on %s failed (%s); resuming from the saved token",
                    watched.collection.name,
                    type(error).__name__,
                )
                self._close_stream(watched)

        return written

    def run(self, stop: threading.Event | None = None, *, idle: float = 0.5) -> None:
        """Poll until ``stop`` is set, waiting ``idle`` seconds when nothing came."""
        stop = stop or threading.Event()
        try:
            while not stop.is_set():
                if self.poll():
                    continue
                # Events waiting for their grace period are looked at again soon.
                waiting = self._busy() and self._grace > 0
                stop.wait(min(idle, self._grace / 4) if waiting else idle)
        finally:
            self.close()

    def _busy(self) -> bool:
        return any(watched.pending for watched in self._watched or ())

    def _close_stream(self, watched: _Watched) -> None:
        if watched.stream is not None:
            try:
                watched.stream.close()
            except PyMongoError:
                logger.debug("closing a change stream failed")
            watched.stream = None
        watched.pending.clear()

    def close(self) -> None:
        """Close every change stream; pending events are read again next time."""
        for watched in self._watched or ():
            self._close_stream(watched)

    def __enter__(self) -> ChangeStreamTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one event

    def _decide(self, watched: _Watched) -> int:
        written = 0
        while watched.pending:
            received, event = watched.pending[0]
            decision = self._handle(watched, event, received)
            if decision is None:
                break
            watched.pending.popleft()
            written += decision
            self._save_token(watched, event.get("_id"))

        return written

    def _handle(
        self, watched: _Watched, event: Mapping[str, Any], received: float
    ) -> int | None:
        """1 if logged, 0 if skipped, None to wait for the ODM's activity."""
        operation = event.get("operationType", "")
        if operation not in _KINDS:
            if operation == "invalidate":
                logger.warning(
                    "the change stream on %s was invalidated (collection dropped "
                    "or renamed)",
                    watched.collection.name,
                )
            return 0

        model = watched.model
        options = model.activity_options()
        if not options.enabled:
            return 0

        entity_id = (event.get("documentKey") or {}).get("_id")
        kind, changes, values = self._describe(watched, event)
        if kind == "update" and not changes:
            self.skipped += 1
            return 0

        entity_type = options.entity_type_for(model)
        happened = _event_time(event)
        if self._odm_logged(entity_type, entity_id, _KINDS[operation], happened):
            self.skipped += 1
            return 0
        if self._clock() - received < self._grace:
            return None

        try:
            self._write(watched, event, kind, changes, values, happened)
        except ActivityError as error:
            # One bad event (say, a document without its tenant) must not stop
            # the stream: it is reported and passed over.
            logger.warning(
                "could not log a %s on %s made outside the ODM: %s",
                operation,
                watched.collection.name,
                error,
            )
            self.failed += 1
            return 0
        return 1

    def _verb(self, options: ActivityOptions, entity_type: str, kind: str) -> str:
        return getattr(options.types, kind) or f"{snake_case(entity_type)}_{kind}d"

    def _odm_logged(
        self,
        entity_type: str,
        entity_id: Any,
        kinds: tuple[str, ...],
        happened: dt.datetime,
    ) -> bool:
        options = next(
            (
                model.activity_options()
                for model in self._models
                if model.activity_options().entity_type_for(model) == entity_type
            ),
            None,
        )
        verbs = [
            self._verb(options, entity_type, kind)
            if options is not None
            else f"{snake_case(entity_type)}_{kind}d"
            for kind in kinds
        ]
        self._forget_claims()
        query = {
            "entity.type": entity_type,
            "entity.id": normalize(entity_id),
            "type": {"$in": verbs},
            "createdAt": {
                "$gte": happened - self._window,
                "$lte": happened + self._window,
            },
            "context.source": {"$ne": SOURCE},
        }
        candidates = (
            Activity._get_collection()
            .find(query, {"_id": 1})
            .sort([("createdAt", 1), ("_id", 1)])
            .limit(len(self._claimed) + 1)
        )
        for candidate in candidates:
            if candidate["_id"] not in self._claimed:
                self._claimed[candidate["_id"]] = self._clock()
                return True

        return False

    def _forget_claims(self) -> None:
        horizon = self._clock() - 2 * self._window.total_seconds() - self._grace
        while self._claimed:
            oldest = next(iter(self._claimed.values()))
            if oldest >= horizon:
                break
            self._claimed.popitem(last=False)

    def _describe(
        self, watched: _Watched, event: Mapping[str, Any]
    ) -> tuple[str, list[Change], Mapping[str, Any]]:
        """The kind of write, its tracked changes, and the document's values."""
        model = watched.model
        operation = event["operationType"]
        after: Mapping[str, Any] | None = event.get("fullDocument")
        before: Mapping[str, Any] | None = event.get("fullDocumentBeforeChange")
        options = model.activity_options()

        if operation == "insert":
            document = after or {}
            return "create", stored_changes(model, "create", {}, document), document

        if operation == "delete":
            if before is None:
                return "delete", [], {}
            return "delete", stored_changes(model, "delete", before, {}), before

        if operation == "replace":
            document = after or {}
            if before is None:
                # No pre-image: every field of the new document, from unknown.
                return "update", stored_changes(model, "create", {}, document), document
            return "update", stored_changes(model, "update", before, document), document

        return (
            "update",
            _tracked(model, options, _update_changes(event)),
            (after or before or {}),
        )

    def _write(
        self,
        watched: _Watched,
        event: Mapping[str, Any],
        kind: str,
        changes: list[Change],
        values: Mapping[str, Any],
        happened: dt.datetime,
    ) -> None:
        model = watched.model
        options = model.activity_options()
        entity_type = options.entity_type_for(model)
        user_id = (
            _field_value(model, values, options.user_field)
            if options.user_field
            else None
        )
        team_id = (
            _field_value(model, values, options.team_field)
            if options.team_field
            else None
        )
        extra: dict[str, Any] = {}
        if options.multi_tenant:
            extra["tenant"] = document_tenant(model, values, options)
        namespace = f"{watched.collection.database.name}.{watched.collection.name}"
        son = build_son(
            type=self._verb(options, entity_type, kind),
            entity_type=entity_type,
            entity_id=(event.get("documentKey") or {}).get("_id"),
            user_id=user_id,
            team_id=team_id,
            changes=changes,
            context={
                "source": SOURCE,
                "operation": event["operationType"],
                "preImage": "fullDocumentBeforeChange" in event
                and event["fullDocumentBeforeChange"] is not None,
            },
            created_at=happened,
            event_id=event_id_for(namespace, event),
            options=options,
            **extra,
        )
        write_activity(
            WriteRequest(
                son=son, sender=model, options=options, on_error=on_error_for(options)
            ),
            want_result=False,
        )
        self.logged += 1
        logger.debug("logged a %s made outside the ODM", event["operationType"])


def _update_changes(event: Mapping[str, Any]) -> list[Change]:
    """Changes of an update event: exact with a pre-image, else ``from`` unknown."""
    description = event.get("updateDescription") or {}
    before: Mapping[str, Any] | None = event.get("fullDocumentBeforeChange")
    after: Mapping[str, Any] | None = event.get("fullDocument")
    changes: list[Change] = []

    def old(path: str) -> Any:
        if before is None:
            return None
        value = _get_path(before, path)
        return None if value is _ABSENT else value

    for path, value in (description.get("updatedFields") or {}).items():
        if before is None:
            changes.append({"path": path, "from": None, "to": normalize(value)})
        else:
            changes.extend(diff(normalize(old(path)), normalize(value), path))
    for path in description.get("removedFields") or ():
        if before is None:
            changes.append({"path": path, "from": None, "to": None})
        else:
            changes.extend(diff(normalize(old(path)), None, path))
    for truncated in description.get("truncatedArrays") or ():
        path, size = truncated["field"], truncated["newSize"]
        if before is not None:
            previous = old(path)
            if isinstance(previous, list):
                changes.extend(
                    diff(normalize(previous), normalize(previous[:size]), path)
                )
        else:
            current = _get_path(after, path) if after is not None else None
            changes.append(
                {
                    "path": path,
                    "from": None,
                    "to": None if current is _ABSENT else normalize(current),
                }
            )

    return changes
