"""A fake of pymongo's change streams over mongomock, for the tracker's tests.

``FakeOplog.watch(collection, **kwargs)`` has the signature of the tracker's
``watch`` hook and returns a :class:`FakeChangeStream` with pymongo's
interface: ``try_next``, ``resume_token``, ``close``, iteration and ``with``.
Writes made through the oplog's helpers change the mongomock collection and
record the change event a server would send.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from bson import Timestamp
from pymongo.collection import Collection
from pymongo.errors import PyMongoError


class FakeChangeStream:
    def __init__(self, oplog: FakeOplog, name: str, position: int) -> None:
        self._oplog = oplog
        self._name = name
        self._position = position
        self._token: Mapping[str, Any] | None = None
        self.closed = False

    @property
    def resume_token(self) -> Mapping[str, Any] | None:
        return self._token

    def try_next(self) -> Mapping[str, Any] | None:
        if self.closed:
            raise RuntimeError("the change stream is closed")
        if self._oplog.fail_next:
            self._oplog.fail_next = False
            raise PyMongoError("connection reset")
        events = self._oplog.events[self._name]
        if self._position >= len(events):
            return None
        event = events[self._position]
        self._position += 1
        self._token = event["_id"]
        return copy.deepcopy(event)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return self

    def __next__(self) -> Mapping[str, Any]:
        event = self.try_next()
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeChangeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeOplog:
    def __init__(self, *, pre_images: bool = False) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.opened: list[dict[str, Any]] = []
        self.pre_images = pre_images
        self.fail_next = False
        self._counter = 0
        self.clock = dt.datetime(2026, 5, 1, 12, 0, 0)

    # -- the watch hook

    def watch(self, collection: Collection[Any], **kwargs: Any) -> FakeChangeStream:
        self.opened.append(kwargs)
        events = self.events.setdefault(collection.name, [])
        position = 0
        token = kwargs.get("resume_after")
        if token is not None:
            position = next(
                index + 1 for index, event in enumerate(events) if event["_id"] == token
            )
        return FakeChangeStream(self, collection.name, position)

    # -- recording events

    def record(
        self,
        collection: Collection[Any],
        operation: str,
        document_id: Any,
        *,
        before: Mapping[str, Any] | None = None,
        description: Mapping[str, Any] | None = None,
        when: dt.datetime | None = None,
    ) -> dict[str, Any]:
        self._counter += 1
        wall = when or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        wall = wall.replace(microsecond=wall.microsecond // 1000 * 1000)
        event: dict[str, Any] = {
            "_id": {"_data": f"82{self._counter:016X}"},
            "operationType": operation,
            "clusterTime": Timestamp(int(wall.replace(tzinfo=dt.UTC).timestamp()), 1),
            "wallTime": wall,
            "ns": {"db": collection.database.name, "coll": collection.name},
            "documentKey": {"_id": document_id},
        }
        if operation in ("insert", "replace", "update"):
            event["fullDocument"] = collection.find_one({"_id": document_id})
        if description is not None:
            event["updateDescription"] = description
        if self.pre_images and operation in ("update", "replace", "delete"):
            event["fullDocumentBeforeChange"] = before
        self.events.setdefault(collection.name, []).append(event)
        return event

    # -- writes "from outside", recorded

    def insert(self, collection: Collection[Any], document: dict[str, Any]) -> Any:
        inserted = collection.insert_one(document).inserted_id
        self.record(collection, "insert", inserted)
        return inserted

    def update(
        self,
        collection: Collection[Any],
        document_id: Any,
        *,
        set: Mapping[str, Any] | None = None,
        unset: list[str] | None = None,
    ) -> None:
        before = collection.find_one({"_id": document_id})
        update: dict[str, Any] = {}
        if set:
            update["$set"] = dict(set)
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        collection.update_one({"_id": document_id}, update)
        self.record(
            collection,
            "update",
            document_id,
            before=before,
            description={
                "updatedFields": dict(set or {}),
                "removedFields": list(unset or []),
                "truncatedArrays": [],
            },
        )

    def replace(
        self, collection: Collection[Any], document_id: Any, document: dict[str, Any]
    ) -> None:
        before = collection.find_one({"_id": document_id})
        collection.replace_one({"_id": document_id}, document)
        self.record(collection, "replace", document_id, before=before)

    def delete(self, collection: Collection[Any], document_id: Any) -> None:
        before = collection.find_one({"_id": document_id})
        collection.delete_one({"_id": document_id})
        self.record(collection, "delete", document_id, before=before)
