"""Parsing durations given as seconds, ``timedelta`` or strings like ``"90d"``."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_duration"]

_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


_LONGEST = dt.timedelta(days=365_250)


def parse_duration(value: object, *, name: str = "duration") -> dt.timedelta:
    """Return ``value`` as a positive ``timedelta``.

    Accepts a number of seconds, a ``timedelta`` or a string such as ``"90d"``,
    ``"12h"``, ``"1m"``, ``"30s"``, ``"500ms"`` or ``"2w"``; raises
    ``ValueError`` naming ``name`` for anything else, including a duration
    longer than 1000 years.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a duration, not a boolean")
    try:
        result = _as_timedelta(value, name)
    except OverflowError:
        result = _LONGEST + _LONGEST
    if result > _LONGEST:
        # A date this far from now is past what a datetime can hold: a TTL
        # would fail on every write, a cutoff on every prune.
        raise ValueError(f"{name} {value!r} is out of range (at most 1000 years)")
    if result <= dt.timedelta(0):
        raise ValueError(f"{name} must be positive, got {value!r}")

    return result


def _as_timedelta(value: object, name: str) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(
                f"{name} {value!r} is not a duration; use seconds, a timedelta or "
                'a string like "90d", "12h", "1m", "30s"'
            )
        return dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])

    raise ValueError(f"{name} must be a duration, not {type(value).__name__}")
