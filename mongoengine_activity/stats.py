"""Activity statistics as one aggregation pipeline (read side).

``stats()`` runs through the queryset's own ``aggregate()``, which puts the
queryset's filter (a tenant, a feed's narrowing) in front of the pipeline, so
counts never include what the queryset would not return.
``ActivityQuerySet.stats()`` imports and calls this module (the model layer does
not import the read side).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._ranges import DateRange, range_filter
from .errors import QueryError

if TYPE_CHECKING:
    from .models import ActivityQuerySet

__all__ = ["GROUPS", "METRICS", "stats"]

# What each ``group_by`` groups on. ``entity`` is the entity *type*, so that
# ``unique_entities`` counts the documents of that type that were touched.
GROUPS: dict[str, Any] = {
    "type": "$type",
    "user": "$userId",
    "entity": "$entity.type",
    "day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$createdAt"}},
    "hour": {"$dateToString": {"format": "%Y-%m-%dT%H:00", "date": "$createdAt"}},
}

# Accumulators; unique_* collect sets whose sizes are taken afterwards. A
# system action (no user) is not a user, so null user ids are left out.
_ACCUMULATORS: dict[str, Any] = {
    "count": {"$sum": 1},
    "unique_users": {
        "$addToSet": {"$cond": [{"$eq": ["$userId", None]}, "$$REMOVE", "$userId"]}
    },
    "unique_entities": {"$addToSet": {"t": "$entity.type", "i": "$entity.id"}},
}
METRICS = tuple(_ACCUMULATORS)
_TIME_GROUPS = {"day", "hour"}


def _check(value: str, valid: Iterable[str], argument: str) -> None:
    if value not in valid:
        raise QueryError(
            f"unknown {argument} {value!r}; valid values: {', '.join(valid)}",
            argument=argument,
        )


def pipeline(
    group_by: str,
    *,
    date_range: DateRange,
    metrics: Iterable[str],
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The aggregation pipeline of :func:`stats`, without the queryset's own
    ``$match``."""
    if not isinstance(group_by, str):
        raise QueryError(
            f"group_by must be one of {', '.join(GROUPS)}, not {group_by!r}",
            argument="group_by",
        )
    _check(group_by, GROUPS, "group_by")
    chosen = [metrics] if isinstance(metrics, str) else list(metrics)
    if not chosen:
        raise QueryError(
            f"metrics is empty; choose from {', '.join(METRICS)}", argument="metrics"
        )
    for metric in chosen:
        _check(metric, METRICS, "metric")
    chosen = list(dict.fromkeys(chosen))

    steps: list[dict[str, Any]] = []
    match = range_filter(date_range, now=now)
    if match:
        steps.append({"$match": match})
    group: dict[str, Any] = {"_id": GROUPS[group_by]}
    project: dict[str, Any] = {"_id": 0, "group": "$_id"}
    for metric in chosen:
        group[metric] = _ACCUMULATORS[metric]
        project[metric] = {"$size": f"${metric}"} if metric != "count" else 1
    steps += [{"$group": group}, {"$project": project}]
    if group_by in _TIME_GROUPS or "count" not in chosen:
        steps.append({"$sort": {"group": 1}})
    else:
        steps.append({"$sort": {"count": -1, "group": 1}})

    return steps


def stats(
    queryset: ActivityQuerySet,
    group_by: str = "type",
    *,
    date_range: DateRange = "last30days",
    metrics: Iterable[str] = ("count",),
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Counts per group as plain dicts, e.g.
    ``{"group": "order_created", "count": 12, "unique_users": 3}``.

    ``group_by`` is ``type``, ``user`` (the stored user id; ``None`` for system
    actions), ``entity`` (the entity type), ``day`` (``"2026-12-04"``, UTC) or
    ``hour`` (``"2026-12-04T15:00"``, UTC). ``date_range`` is ``"today"``,
    ``"last7days"``, ``"last30days"``, ``(start, end)`` (start included, end
    excluded) or ``None`` for all time. ``metrics`` chooses among ``count``,
    ``unique_users`` and ``unique_entities``. Time groups come in time order,
    the others by descending count, then group.
    """
    steps = pipeline(group_by, date_range=date_range, metrics=metrics, now=now)
    return list(queryset.aggregate(steps))
