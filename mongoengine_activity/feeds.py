"""Feeds and search over the activity log (read side).

Every helper takes an :class:`~mongoengine_activity.models.ActivityQuerySet` and
returns a narrowed copy of it, newest first (``createdAt`` descending, then
``_id`` descending so equal timestamps have one stable order). They build on the
queryset's own ``filter()``, never on the raw collection, so whatever the
queryset already filters on (a tenant, a date, a ``.filter()`` by the caller)
still applies.

The model layer must not import the read side, so ``ActivityQuerySet`` exposes
these as thin methods that import this module when called: ``Activity.objects``
is the public entry point, and these functions are its implementation.

Each helper's query is served by an index declared on ``Activity``: an equality
prefix (``userId``, ``teamId``, ``entity.type`` [+ ``entity.id``], ``type``)
followed by ``createdAt`` and ``_id`` descending, or ``createdAt`` alone.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bson.regex import Regex

from ._bson import normalize
from ._ranges import DateRange, range_filter
from .errors import QueryError

if TYPE_CHECKING:
    from .models import ActivityQuerySet

__all__ = [
    "NEWEST_FIRST",
    "entity_history",
    "global_feed",
    "has_text_index",
    "search",
    "team_feed",
    "user_feed",
]

NEWEST_FIRST = ("-created_at", "-id")
_TEXT_INDEX_TTL = 60.0


def _names(value: str | Iterable[str] | None, argument: str) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise QueryError(
            f"{argument} must be a non-empty string or list of strings, not {value!r}",
            argument=argument,
        )

    return names


def _plain_id(value: Any, argument: str) -> Any:
    """``value`` as stored, if it is one id; a mapping (a query operator such
    as ``{"$ne": None}`` from JSON input), a list or a regular expression (what
    ``json_util`` makes of ``{"$regex": ...}``) would match other ids."""
    if isinstance(value, Mapping | list | tuple | set | frozenset | re.Pattern | Regex):
        raise QueryError(
            f"{argument} must be one id (a string, number, ObjectId...), not "
            f"{type(value).__name__} {value!r}",
            argument=argument,
        )

    return normalize(value)


def _one_or_in(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else {"$in": values}


def _check_limit(limit: int | None) -> None:
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
    ):
        raise QueryError(
            f"limit must be a positive integer or None, not {limit!r}",
            argument="limit",
        )


def _narrow(
    queryset: ActivityQuerySet,
    query: dict[str, Any],
    *,
    entities: str | Iterable[str] | None = None,
    types: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> ActivityQuerySet:
    _check_limit(limit)
    query = dict(query)
    entity_types = _names(entities, "entities")
    if entity_types is not None:
        query["entity.type"] = _one_or_in(entity_types)
    verbs = _names(types, "types")
    if verbs is not None:
        query["type"] = _one_or_in(verbs)

    narrowed: ActivityQuerySet = (
        queryset.filter(__raw__=query) if query else queryset.clone()
    ).order_by(*NEWEST_FIRST)
    if limit is not None:
        narrowed = narrowed.limit(limit)

    return narrowed


def global_feed(
    queryset: ActivityQuerySet,
    entities: str | Iterable[str] | None = None,
    types: str | Iterable[str] | None = None,
    limit: int | None = 50,
) -> ActivityQuerySet:
    """Every activity, optionally only of some entity types or verbs."""
    return _narrow(queryset, {}, entities=entities, types=types, limit=limit)


def user_feed(
    queryset: ActivityQuerySet,
    user_id: Any,
    *,
    entities: str | Iterable[str] | None = None,
    types: str | Iterable[str] | None = None,
    limit: int | None = 50,
) -> ActivityQuerySet:
    """What one user did; ``user_id`` is matched as stored (ObjectId, str, int)."""
    return _narrow(
        queryset,
        {"userId": _plain_id(user_id, "user_id")},
        entities=entities,
        types=types,
        limit=limit,
    )


def team_feed(
    queryset: ActivityQuerySet,
    team_id: Any,
    *,
    entities: str | Iterable[str] | None = None,
    types: str | Iterable[str] | None = None,
    limit: int | None = 50,
) -> ActivityQuerySet:
    """What happened in one team."""
    return _narrow(
        queryset,
        {"teamId": _plain_id(team_id, "team_id")},
        entities=entities,
        types=types,
        limit=limit,
    )


def entity_history(
    queryset: ActivityQuerySet,
    entity_type: str,
    entity_id: Any,
    *,
    types: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> ActivityQuerySet:
    """Everything that happened to one document, newest first; no limit by
    default."""
    if not isinstance(entity_type, str) or not entity_type:
        raise QueryError(
            f"entity_type must be a non-empty string, not {entity_type!r}",
            argument="entity_type",
        )

    return _narrow(
        queryset,
        {"entity.type": entity_type, "entity.id": _plain_id(entity_id, "entity_id")},
        types=types,
        limit=limit,
    )


# The string values among the top-level values of ``data`` (stored as
# ``meta``). Aggregation expressions have ``$type``, but mongomock does not, so
# "is a string" is spelled with BSON's cross-type order instead: every string
# sorts at or after "" and before every object.
_DATA_STRINGS = {
    "$filter": {
        "input": {"$objectToArray": {"$ifNull": ["$meta", {}]}},
        "as": "item",
        "cond": {
            "$and": [
                {"$gte": ["$$item.v", {"$literal": ""}]},
                {"$lt": ["$$item.v", {"$literal": {}}]},
            ]
        },
    }
}


def _text_condition(text: str) -> dict[str, Any]:
    pattern = re.escape(text)
    data_match = {
        "$filter": {
            "input": _DATA_STRINGS,
            "as": "item",
            "cond": {
                "$regexMatch": {"input": "$$item.v", "regex": pattern, "options": "i"}
            },
        }
    }
    return {
        "$or": [
            {"type": {"$regex": pattern, "$options": "i"}},
            {"entity.type": {"$regex": pattern, "$options": "i"}},
            {"$expr": {"$gt": [{"$size": data_match}, 0]}},
        ]
    }


_text_indexes: dict[str, tuple[float, bool]] = {}
_text_lock = threading.Lock()


def has_text_index(queryset: ActivityQuerySet) -> bool:
    """Whether the server has a text index on the queryset's collection.

    Looked up at most once a minute per collection; a backend that cannot list
    indexes counts as having none.
    """
    collection = queryset._collection
    key = collection.full_name
    now = time.monotonic()
    with _text_lock:
        cached = _text_indexes.get(key)
    if cached is not None and now - cached[0] < _TEXT_INDEX_TTL:
        return cached[1]

    try:
        found = any(
            "text" in dict(index.get("key", {})).values()
            for index in collection.list_indexes()
        )
    except Exception:
        found = False
    with _text_lock:
        _text_indexes[key] = (now, found)

    return found


def search(
    queryset: ActivityQuerySet,
    text: str | None = None,
    *,
    date_range: DateRange = None,
    types: str | Iterable[str] | None = None,
    user_id: Any = None,
    entities: str | Iterable[str] | None = None,
    limit: int | None = 50,
    use_text_index: bool | None = None,
    now: dt.datetime | None = None,
) -> ActivityQuerySet:
    """Activities whose verb, entity type or a string value of ``data`` contains
    ``text`` (case-insensitive, taken literally: ``.*`` or ``(`` match
    themselves).

    ``date_range`` includes its start and excludes its end. ``user_id=None``
    does not filter by user. With a text index on the server (or
    ``use_text_index=True``), ``text`` is searched as a ``$text`` phrase instead:
    word-based and stemmed, as MongoDB's text search is. Without one, only the
    top-level string values of ``data`` are searched.
    """
    query: dict[str, Any] = range_filter(date_range, now=now)
    if user_id is not None:
        query["userId"] = _plain_id(user_id, "user_id")
    if text is not None and not isinstance(text, str):
        raise QueryError(f"text must be a string, not {text!r}", argument="text")

    if text:
        if use_text_index is None:
            use_text_index = has_text_index(queryset)
        phrase = text.replace('"', " ").replace("\\", " ").strip()
        if use_text_index and phrase:
            query["$text"] = {"$search": f'"{phrase}"'}
        else:
            query.update(_text_condition(text))

    return _narrow(queryset, query, entities=entities, types=types, limit=limit)
