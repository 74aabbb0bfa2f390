"""Retention: pruning, ``max_per_entity`` trimming and crash-safe archiving.

- ``ttl`` needs no code here: the write path stores ``expiresAt`` and the TTL
  index (``expireAfterSeconds=0``) lets MongoDB delete each activity at its own
  time, so changing a model's ``ttl`` changes new activities only and never
  needs an index rebuild.
- :func:`trim_entity` keeps the newest N activities of one entity; the write
  path calls it after each insert for models with ``max_per_entity``, and
  :func:`trim_entities` does it for all entities of a type in one call.
- :func:`prune` deletes old activities in batches.
- :func:`archive` moves old activities to the archive collection, batch by
  batch: copy (upsert by ``_id``), verify by ids, then delete exactly the
  verified ids. A crash at any step leaves every activity in the log, in the
  archive, or in both; running it again finishes the move without loss or
  duplicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import BulkWriteError

from ._bson import now_ms
from .durations import parse_duration
from .models import Activity
from .options import current_settings

__all__ = [
    "ArchiveResult",
    "archive",
    "archive_due",
    "iter_archive",
    "iter_prune",
    "prune",
    "trim_entities",
    "trim_entity",
]

_DUPLICATE_KEY = 11000
_NEWEST_FIRST = [("createdAt", -1), ("_id", -1)]
_OLDEST_FIRST = [("createdAt", 1), ("_id", 1)]

Duration = dt.timedelta | str | int | float


def _collection() -> Any:
    return Activity._get_collection()


def _archive_collection() -> Any:
    return Activity._get_db()[current_settings().archive_collection]


def trim_entity(entity: Mapping[str, Any], keep: int) -> int:
    """Delete all but the newest ``keep`` activities of ``entity``; return count.

    ``entity`` is the stored ``{"type", "id"}`` mapping.
    """
    collection = _collection()
    query = {"entity.type": entity["type"], "entity.id": entity["id"]}
    surplus = [
        son["_id"]
        for son in collection.find(query, {"_id": 1}).sort(_NEWEST_FIRST).skip(keep)
    ]
    if not surplus:
        return 0

    deleted: int = collection.delete_many({"_id": {"$in": surplus}}).deleted_count
    return deleted


def trim_entities(entity_type: str, keep: int) -> int:
    """Apply ``max_per_entity=keep`` to every entity of ``entity_type`` at once."""
    pipeline = [
        {"$match": {"entity.type": entity_type}},
        {"$group": {"_id": "$entity.id", "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": keep}}},
    ]
    deleted = 0
    for group in _collection().aggregate(pipeline):
        deleted += trim_entity({"type": entity_type, "id": group["_id"]}, keep)

    return deleted


def _cutoff(older_than: Duration | None, now: dt.datetime | None) -> dt.datetime:
    if older_than is None:
        raise ValueError("give older_than, such as '90d'")

    return (now or now_ms()) - parse_duration(older_than, name="older_than")


def _old_query(cutoff: dt.datetime, entity_type: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"createdAt": {"$lt": cutoff}}
    if entity_type is not None:
        query["entity.type"] = entity_type

    return query


def count_older(
    older_than: Duration,
    *,
    entity_type: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """How many activities :func:`prune` or :func:`archive` would touch."""
    query = _old_query(_cutoff(older_than, now), entity_type)
    count: int = _collection().count_documents(query)
    return count


def _check_count(name: str, value: Any, *, allow_none: bool = False) -> None:
    """Refuse a count that is not a positive integer (``None`` where allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def iter_prune(
    older_than: Duration,
    *,
    entity_type: str | None = None,
    limit: int | None = None,
    batch_size: int = 1000,
    now: dt.datetime | None = None,
) -> Iterator[int]:
    """Delete old activities, oldest first, yielding the count of each batch."""
    _check_count("limit", limit, allow_none=True)
    _check_count("batch_size", batch_size)
    collection = _collection()
    query = _old_query(_cutoff(older_than, now), entity_type)
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch_size if remaining is None else min(batch_size, remaining)
        ids = [
            son["_id"]
            for son in collection.find(query, {"_id": 1})
            .sort(_OLDEST_FIRST)
            .limit(size)
        ]
        if not ids:
            return
        deleted: int = collection.delete_many({"_id": {"$in": ids}}).deleted_count
        if remaining is not None:
            remaining -= len(ids)
        yield deleted


def prune(
    older_than: Duration,
    *,
    entity_type: str | None = None,
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Delete activities older than ``older_than`` (at most ``limit``, oldest
    first), optionally of one ``entity_type``; return how many were deleted."""
    return sum(iter_prune(older_than, entity_type=entity_type, limit=limit, now=now))


@dataclass(slots=True)
class ArchiveResult:
    """How many activities :func:`archive` copied, verified and deleted."""

    copied: int = 0
    deleted: int = 0
    batches: int = 0
    ids: list[Any] = field(default_factory=list, repr=False)


def _copy(batch: list[dict[str, Any]]) -> None:
    # Keyed by _id: a copy left by an earlier, interrupted run is the same
    # immutable activity, so its duplicate-key error means "already there".
    try:
        _archive_collection().insert_many(batch, ordered=False)
    except BulkWriteError as error:
        others = [
            entry
            for entry in error.details.get("writeErrors", ())
            if entry.get("code") != _DUPLICATE_KEY
        ]
        if others:
            raise


def _verify(batch: list[dict[str, Any]]) -> list[Any]:
    """The ids of ``batch`` whose archived copy holds exactly what the log does."""
    ids = [son["_id"] for son in batch]
    archived = {
        son["_id"]: son for son in _archive_collection().find({"_id": {"$in": ids}})
    }
    return [son["_id"] for son in batch if archived.get(son["_id"]) == son]


def _delete(ids: list[Any]) -> int:
    deleted: int = _collection().delete_many({"_id": {"$in": ids}}).deleted_count
    return deleted


def iter_archive(
    older_than: Duration,
    *,
    entity_type: str | None = None,
    batch_size: int = 1000,
    now: dt.datetime | None = None,
    keep_ids: bool = False,
) -> Iterator[ArchiveResult]:
    """Move old activities to the archive batch by batch, yielding each batch's
    result (see :func:`archive`)."""
    _check_count("batch_size", batch_size)
    query = _old_query(_cutoff(older_than, now), entity_type)
    collection = _collection()
    while True:
        batch = list(collection.find(query).sort(_OLDEST_FIRST).limit(batch_size))
        if not batch:
            return
        _copy(batch)
        verified = _verify(batch)
        if len(verified) != len(batch):
            # Never delete what the archive does not hold exactly.
            raise RuntimeError(
                f"archive: {len(batch) - len(verified)} activities are missing from "
                f"{current_settings().archive_collection!r}, or differ there, after "
                "copying; nothing of this batch was deleted"
            )
        deleted = _delete(verified)
        yield ArchiveResult(
            copied=len(batch),
            deleted=deleted,
            batches=1,
            ids=verified if keep_ids else [],
        )


def archive(
    older_than: Duration,
    *,
    entity_type: str | None = None,
    batch_size: int = 1000,
    now: dt.datetime | None = None,
) -> ArchiveResult:
    """Move activities older than ``older_than`` to the archive collection.

    Each batch is copied (keyed by ``_id``, so a copy left by an interrupted
    run is not duplicated), verified by ids, and then exactly the verified ids
    are deleted, so an interruption at any point loses and duplicates
    nothing: run it again to finish.
    """
    total = ArchiveResult()
    for part in iter_archive(
        older_than, entity_type=entity_type, batch_size=batch_size, now=now
    ):
        total.copied += part.copied
        total.deleted += part.deleted
        total.batches += 1

    return total


def archive_due(
    document: Any,
    *,
    batch_size: int = 1000,
    now: dt.datetime | None = None,
) -> ArchiveResult:
    """Archive a tracked model's activities older than its ``archive_after``.

    Meant for a scheduled job; raises ``ValueError`` when the model has no
    ``archive_after``.
    """
    options = document.activity_options()
    if options.archive_after is None:
        raise ValueError(
            f"{document.__name__} has no archive_after in meta['activity']"
        )

    return archive(
        options.archive_after,
        entity_type=options.entity_type_for(document),
        batch_size=batch_size,
        now=now,
    )


def _activity_prune(
    cls: type[Activity],
    older_than: Duration,
    *,
    entity_type: str | None = None,
    limit: int | None = None,
) -> int:
    """Delete activities older than ``older_than``; return how many went.

    See :func:`mongoengine_activity.lifecycle.prune`.
    """
    return prune(older_than, entity_type=entity_type, limit=limit)


def _activity_archive(
    cls: type[Activity],
    older_than: Duration,
    *,
    entity_type: str | None = None,
    batch_size: int = 1000,
) -> ArchiveResult:
    """Move old activities to the archive collection, crash-safe.

    See :func:`mongoengine_activity.lifecycle.archive`.
    """
    return archive(older_than, entity_type=entity_type, batch_size=batch_size)


Activity.prune = classmethod(_activity_prune)
Activity.archive = classmethod(_activity_archive)
