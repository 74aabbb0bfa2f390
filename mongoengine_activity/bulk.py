"""Bulk logging: many activities through the write path, inserted in chunks.

Every item goes through the same validation, masking, ``before_log``, dedup
and rate limits as :func:`~mongoengine_activity.log_activity`; only the insert
differs: one unordered ``insert_many`` per chunk, where a duplicate
``event_id`` is skipped instead of looked up first. Signed activities are the
exception: each signature chains to the one before, so they are inserted one
by one, in order. Items are read from the
iterable one chunk at a time, so a generator of millions keeps memory flat.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pymongo.errors import BulkWriteError

from .errors import ActivityWriteError, ValidationError
from .models import Activity
from .writer import (
    WriteRequest,
    admit,
    after_insert,
    insert_one,
    must_sign,
    prepare_request,
)

__all__ = ["BulkFailure", "BulkResult", "ChunkOutcome", "bulk_log", "insert_chunk"]

logger = logging.getLogger("mongoengine_activity")

_DUPLICATE_KEY = 11000
# Failure details kept in a result; the counts stay exact beyond it.
MAX_FAILURES_KEPT = 1000


@dataclass(slots=True)
class BulkFailure:
    """One item that could not be stored: its position and why."""

    index: int
    reason: str


@dataclass(slots=True)
class BulkResult:
    """What :func:`bulk_log` did with each item.

    ``skipped`` counts repeated ``event_id``s (already stored, a no-op);
    ``dropped`` counts items a ``before_log`` receiver cancelled or dedup or a
    rate limit dropped (each sent on ``activity_dropped`` or cancelled on
    purpose); ``failures`` keeps the first 1000 failures' reasons.
    """

    inserted: int = 0
    skipped: int = 0
    dropped: int = 0
    failed: int = 0
    failures: list[BulkFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.inserted + self.skipped + self.dropped + self.failed

    def _fail(self, index: int, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(BulkFailure(index, reason))


@dataclass(slots=True)
class ChunkOutcome:
    """Positions in one ``insert_many`` that were inserted, duplicates, or failed."""

    inserted: list[int]
    duplicates: list[int]
    errors: dict[int, Exception]


def insert_chunk(collection: Any, sons: list[dict[str, Any]]) -> ChunkOutcome:
    """Insert ``sons`` unordered; duplicate keys (code 11000) count as duplicates."""
    if not sons:
        return ChunkOutcome([], [], {})
    try:
        collection.insert_many(sons, ordered=False)
    except BulkWriteError as error:
        duplicates: list[int] = []
        errors: dict[int, Exception] = {}
        for entry in error.details.get("writeErrors", ()):
            index = entry["index"]
            if entry.get("code") == _DUPLICATE_KEY:
                duplicates.append(index)
            else:
                errors[index] = ActivityWriteError(
                    f"insert failed (code {entry.get('code')}): {entry.get('errmsg')}"
                )
        refused = set(duplicates) | set(errors)
        inserted = [index for index in range(len(sons)) if index not in refused]
        return ChunkOutcome(inserted, duplicates, errors)
    except Exception as error:
        return ChunkOutcome([], [], dict.fromkeys(range(len(sons)), error))

    return ChunkOutcome(list(range(len(sons))), [], {})


def finish_stored(request: WriteRequest, son: dict[str, Any], activity: Any) -> None:
    """Trim and send ``activity_logged`` for an activity a batch stored; a
    failure is reported, never raised (nobody could catch it per item)."""
    from .writer import report_failure

    quiet = replace(request, son=son, on_error="log")
    try:
        after_insert(quiet, son, activity, want_result=False)
    except Exception as error:
        report_failure(quiet, activity, error)


def report_unstored(
    request: WriteRequest, son: dict[str, Any], activity: Any, error: Exception
) -> None:
    """Report an activity a batch could not store; never raises."""
    from .writer import report_failure

    try:
        report_failure(replace(request, son=son, on_error="log"), activity, error)
    except Exception:
        logger.exception("could not report a failed batch insert")


def bulk_log(
    items: Iterable[Mapping[str, Any]], *, chunk_size: int = 1000
) -> BulkResult:
    """Log many activities; return the inserted / skipped / dropped / failed counts.

    Each item is a mapping of :func:`~mongoengine_activity.log_activity`'s
    arguments (``type``, ``entity``, ``user_id``, ``data``, ``event_id``...).
    A bad item is counted as failed with its reason and the others are still
    written; bulk logging never raises for one item, whatever ``on_error``
    says, and sends ``activity_failed`` only for inserts that failed.
    """
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer, not {chunk_size!r}")

    collection = Activity._get_collection()
    result = BulkResult()
    iterator = iter(items)
    base = 0
    while True:
        chunk = list(itertools.islice(iterator, chunk_size))
        if not chunk:
            return result
        _log_chunk(collection, chunk, base, result)
        base += len(chunk)


def _log_chunk(
    collection: Any,
    chunk: list[Mapping[str, Any]],
    base: int,
    result: BulkResult,
) -> None:
    positions: list[int] = []
    requests: list[WriteRequest] = []
    sons: list[dict[str, Any]] = []
    activities: list[Any] = []
    for offset, item in enumerate(chunk):
        index = base + offset
        try:
            if not isinstance(item, Mapping):
                raise ValidationError(
                    f"bulk_log(): item {index} is a {type(item).__name__}, "
                    "not a mapping of log_activity() arguments",
                    field="item",
                )
            request = prepare_request(**item)
        except (ValidationError, TypeError) as error:
            result._fail(index, str(error))
            continue
        try:
            admitted = admit(request, look_up_event_id=False)
        except Exception as error:
            result._fail(index, f"{type(error).__name__}: {error}")
            continue
        if admitted.outcome != "write":
            result.dropped += 1
            continue
        if must_sign(request):
            _log_signed(request, admitted.son, admitted.activity, index, result)
            continue
        positions.append(index)
        requests.append(request)
        sons.append(admitted.son)
        activities.append(admitted.activity)

    outcome = insert_chunk(collection, sons)
    result.inserted += len(outcome.inserted)
    result.skipped += len(outcome.duplicates)
    for slot, insert_error in outcome.errors.items():
        result._fail(positions[slot], f"{type(insert_error).__name__}: {insert_error}")
        report_unstored(requests[slot], sons[slot], activities[slot], insert_error)
    for slot in outcome.inserted:
        finish_stored(requests[slot], sons[slot], activities[slot])


def _log_signed(
    request: WriteRequest,
    son: dict[str, Any],
    activity: Any,
    index: int,
    result: BulkResult,
) -> None:
    """A signed activity chains to the one before it: insert it on its own."""
    try:
        stored = insert_one(request, son, activity)
    except Exception as error:
        result._fail(index, f"{type(error).__name__}: {error}")
        report_unstored(request, son, activity, error)
        return
    if not stored.new:
        result.skipped += 1
        return
    result.inserted += 1
    finish_stored(request, stored.son, stored.activity)


def _activity_bulk_log(
    cls: type[Activity],
    items: Iterable[Mapping[str, Any]],
    *,
    chunk_size: int = 1000,
) -> BulkResult:
    """Log many activities in chunks; see :func:`mongoengine_activity.bulk.bulk_log`."""
    return bulk_log(items, chunk_size=chunk_size)


Activity.bulk_log = classmethod(_activity_bulk_log)
