"""Tracking of QuerySet ``update()``, ``update_one()`` and ``modify()``.

One activity per affected document, with real before/after values, for two
extra reads per batch: the matching documents are read once before (in
batches of :data:`BATCH_SIZE`), the update is applied to exactly those ids,
and they are read once more after, by id; the two images are diffed with
:mod:`~mongoengine_activity.diff`. (Working out the after-images without the
second read would mean applying MongoDB's update operators here.)
``modify()`` reads one image and takes the other from the document MongoDB
returns.

The update is restricted to the documents read first, so a document that
starts to match the query between the read and the update is not updated
(it would have no before-image). ``QuerySet.delete()`` is tracked by the
per-document signals MongoEngine sends, not here.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from types import SimpleNamespace
from typing import Any

from pymongo.results import UpdateResult

from .context import collecting, context_value
from .tenancy import document_tenant, write_tenant

__all__ = [
    "BATCH_SIZE",
    "capturing_after_images",
    "tracked_modify",
    "tracked_update",
]

BATCH_SIZE = 1000


_after_sink: contextvars.ContextVar[list[Mapping[str, Any]] | None] = (
    contextvars.ContextVar("mongoengine_activity_after_images", default=None)
)


def capturing_after_images() -> AbstractContextManager[list[Mapping[str, Any]]]:
    """Collect the full after-images a tracked update reads (for
    ``Document.update()``, which refreshes its before-image from them)."""
    return collecting(_after_sink)


def _projection(document: type[Any]) -> dict[str, int] | None:
    options = document.activity_options()
    if options.track is None:
        return None

    fields = document._fields
    names = {path.split(".", 1)[0] for path in options.track}
    names.update(name for name in (options.user_field, options.team_field) if name)
    if options.multi_tenant:
        names.add(options.tenant_document_field or options.tenant_field)
    return {fields[name].db_field if name in fields else name: 1 for name in names}


def _require_tenants(document: type[Any], sons: list[dict[str, Any]]) -> None:
    """Under multi-tenancy, refuse the write before anything is changed when
    one of the documents would get an activity without a usable tenant."""
    options = document.activity_options()
    if not options.multi_tenant:
        return

    in_context = context_value("tenant")
    for son in sons:
        write_tenant(
            options,
            document_tenant(document, son, options),
            in_context,
            where=f"{document.__name__}.objects.update()",
            warn=False,
        )


def _key(value: Any) -> Any:
    """A hashable stand-in for an id (a dict id is not hashable)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)

    return value


def _batches(cursor: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for son in cursor:
        batch.append(son)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _log_changes(
    document: type[Any],
    kind: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    from .tracking import log_stored

    entity = SimpleNamespace(pk=after.get("_id", before.get("_id")))
    log_stored(document, entity, kind, before, after)


def tracked_update(
    queryset: Any,
    call: Any,
    *,
    upsert: bool,
    multi: bool,
    full_result: bool,
    kwargs: Mapping[str, Any],
) -> Any:
    """Run ``call(queryset, upsert=..., multi=..., full_result=True, **kwargs)``
    batch by batch on the documents ``queryset`` matches, logging each."""
    document = queryset._document
    collection = queryset._collection
    projection = _projection(document)
    cursor = collection.find(queryset._query, projection)
    if not multi:
        cursor = cursor.limit(1)

    matched = modified = 0
    touched_any = False
    # A document the update moves along the index being scanned can come back
    # on a later batch of the same cursor; it must not be updated twice.
    seen: set[Any] = set()
    for found in _batches(cursor, BATCH_SIZE):
        batch = [son for son in found if _key(son["_id"]) not in seen]
        if not batch:
            continue
        touched_any = True
        _require_tenants(document, batch)
        ids = [son["_id"] for son in batch]
        seen.update(map(_key, ids))
        restricted = queryset.clone().filter(pk__in=ids)
        result = call(restricted, upsert=False, multi=multi, full_result=True, **kwargs)
        matched += result.matched_count
        modified += result.modified_count
        after = {
            son["_id"]: son
            for son in collection.find({"_id": {"$in": ids}}, projection)
        }
        sink = _after_sink.get()
        if sink is not None and projection is None:
            sink.extend(after.values())
        for before in batch:
            current = after.get(before["_id"])
            if current is None:
                continue
            _log_changes(document, "update", before, current)

    if touched_any or not upsert:
        raw = {"n": matched, "nModified": modified, "updatedExisting": matched > 0}
        return UpdateResult(raw, True) if full_result else matched

    result = call(queryset, upsert=True, multi=multi, full_result=True, **kwargs)
    if result.upserted_id is not None:
        created = collection.find_one({"_id": result.upserted_id}, projection)
        if created is not None:
            _log_changes(document, "create", {}, created)
    if full_result:
        return result
    return result.raw_result["n"] if result.raw_result else None


# How often a tracked modify() looks again after another writer took the
# document it read first; each try re-reads the first match.
_MODIFY_ATTEMPTS = 16


def tracked_modify(
    queryset: Any,
    call: Any,
    *,
    upsert: bool,
    remove: bool,
    new: bool,
    kwargs: Mapping[str, Any],
) -> Any:
    """Run ``call(queryset, ...)`` (QuerySet.modify) and log what it changed.

    The before-image is read once; the after-image is the document MongoDB
    returns (the call always asks for it, and the caller still receives the
    document it asked for). A removal logs the document MongoDB returns.
    """
    from .tracking import _capturing_loads

    document = queryset._document
    if remove:
        with _capturing_loads() as loaded:
            result = call(queryset, upsert=upsert, remove=True, new=False, **kwargs)
        if loaded:
            _log_changes(document, "delete", loaded[-1], {})
        return result

    # The document read first may be changed by another writer before the
    # modify reaches it: then the next match is tried, as an atomic
    # findAndModify would have taken it.
    for _ in range(_MODIFY_ATTEMPTS):
        before = queryset._collection.find_one(queryset._query, sort=queryset._ordering)
        if before is None and not upsert:
            return None
        if before is not None:
            _require_tenants(document, [before])
        target = (
            queryset if before is None else queryset.clone().filter(pk=before["_id"])
        )
        with _capturing_loads() as loaded:
            result = call(target, upsert=upsert, remove=False, new=True, **kwargs)
        if loaded or before is None:
            break
    if not loaded:
        return None
    if before is None:
        _log_changes(document, "create", {}, loaded[-1])
        return result if new else None

    _log_changes(document, "update", before, loaded[-1])
    return result if new else document._from_son(before)
