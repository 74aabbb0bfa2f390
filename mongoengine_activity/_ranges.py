"""Date ranges for the read side: named ranges and ``(start, end)`` pairs.

Pure helpers. A range is inclusive at its start and exclusive at its end, so
consecutive ranges (``(monday, tuesday)``, ``(tuesday, wednesday)``) never count
an activity twice and never miss one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ._bson import now_ms
from .errors import QueryError

__all__ = ["NAMED_RANGES", "DateRange", "range_filter", "resolve_date_range"]

NAMED_RANGES = ("today", "last7days", "last30days")

DateRange = str | tuple[dt.datetime | None, dt.datetime | None] | None


def _ceil_ms(value: dt.datetime) -> dt.datetime:
    """Naive UTC rounded *up* to the millisecond MongoDB can store.

    Rounding up keeps both bounds exact: ``createdAt >= 10:00:00.0004`` means
    ``>= 10:00:00.001`` for millisecond values, and so does ``< 10:00:00.0004``
    mean ``< 10:00:00.001``; truncating would drop or add an activity at the edge.
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    spare = value.microsecond % 1000
    if spare:
        value += dt.timedelta(microseconds=1000 - spare)

    return value


def resolve_date_range(
    date_range: DateRange, *, now: dt.datetime | None = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Return ``(start, end)`` as naive UTC; either bound may be ``None`` (open).

    ``"today"`` is the current UTC day, ``"last7days"`` and ``"last30days"`` the
    7 or 30 days of 24 hours up to ``now`` (open at the end, so an activity
    written while the query runs is not excluded). Aware datetimes are converted
    to UTC; naive ones are taken as UTC, as MongoDB stores them.
    """
    if date_range is None:
        return None, None

    if isinstance(date_range, str):
        current = _ceil_ms(now) if now is not None else now_ms()
        if date_range == "today":
            midnight = current.replace(hour=0, minute=0, second=0, microsecond=0)
            return midnight, midnight + dt.timedelta(days=1)
        if date_range == "last7days":
            return current - dt.timedelta(days=7), None
        if date_range == "last30days":
            return current - dt.timedelta(days=30), None

        raise QueryError(
            f"unknown date_range {date_range!r}; use one of "
            f"{', '.join(NAMED_RANGES)} or a (start, end) pair",
            argument="date_range",
        )

    if not isinstance(date_range, Sequence) or len(date_range) != 2:
        raise QueryError(
            f"date_range must be a (start, end) pair of datetimes or one of "
            f"{', '.join(NAMED_RANGES)}, not {date_range!r}",
            argument="date_range",
        )
    bounds: list[dt.datetime | None] = []
    for bound in date_range:
        if bound is not None and not isinstance(bound, dt.datetime):
            raise QueryError(
                f"date_range bounds must be datetimes or None, not {bound!r}",
                argument="date_range",
            )
        bounds.append(None if bound is None else _ceil_ms(bound))
    start, end = bounds
    if start is not None and end is not None and end < start:
        raise QueryError(
            f"date_range ends ({end}) before it starts ({start})",
            argument="date_range",
        )

    return start, end


def range_filter(
    date_range: DateRange, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The ``createdAt`` condition of a range: ``{}`` when it is unbounded."""
    start, end = resolve_date_range(date_range, now=now)
    condition: dict[str, Any] = {}
    if start is not None:
        condition["$gte"] = start
    if end is not None:
        condition["$lt"] = end

    return {"createdAt": condition} if condition else {}
