"""Masking sensitive values by dotted path, nested and inside lists.

Pure functions. A mask path such as ``card.number`` matches the change paths
``card.number`` and ``items.2.card.number`` alike, because list indices are
skipped when paths are matched, and it masks whatever lies at or below that
path, inside any change whose value contains it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from .diff import Change

__all__ = [
    "PathMatcher",
    "drop_paths",
    "keep_paths",
    "mask_changes",
    "mask_value",
    "matcher_for",
]


# A path segment that matches any one key, as in ``cards.*.number`` for the
# ``number`` of every value of a map field.
ANY_KEY = "*"


def _prefix_of(known: tuple[str, ...], shape: tuple[str, ...]) -> bool:
    """Whether ``known`` matches the start of ``shape`` (``*`` matches any key)."""
    return len(known) <= len(shape) and all(
        want in (have, ANY_KEY) for want, have in zip(known, shape, strict=False)
    )


def _shape(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split(".") if part and not part.isdigit())


class PathMatcher:
    """Answers whether a dotted path lies at or below one of a set of paths."""

    __slots__ = ("_shapes",)

    def __init__(self, paths: Iterable[str]) -> None:
        self._shapes = frozenset(_shape(path) for path in paths if path)

    def __bool__(self) -> bool:
        return bool(self._shapes)

    def covers(self, path: str) -> bool:
        """True when ``path`` equals or lies below one of the paths."""
        shape = _shape(path)
        return any(_prefix_of(known, shape) for known in self._shapes)

    def remainders(self, path: str) -> list[tuple[str, ...]]:
        """The parts of the paths that lie strictly below ``path``."""
        shape = _shape(path)
        return [
            known[len(shape) :]
            for known in self._shapes
            if len(known) > len(shape) and _prefix_of(known[: len(shape)], shape)
        ]


@functools.cache
def matcher_for(paths: tuple[str, ...]) -> PathMatcher:
    """A shared :class:`PathMatcher` for ``paths`` (options are immutable, so
    each set of paths is parsed once per process)."""
    return PathMatcher(paths)


def mask_value(value: Any, remainders: list[tuple[str, ...]], pattern: str) -> Any:
    """Return a copy of ``value`` with every remainder path replaced by ``pattern``."""
    if not remainders or value is None:
        return value
    if isinstance(value, list):
        return [mask_value(item, remainders, pattern) for item in value]
    if not isinstance(value, dict):
        return value

    masked = dict(value)
    for key, item in value.items():
        here = [rest[1:] for rest in remainders if rest[0] in (key, ANY_KEY)]
        if not here:
            continue
        if any(not rest for rest in here):
            masked[key] = None if item is None else pattern
        else:
            masked[key] = mask_value(item, here, pattern)

    return masked


def drop_paths(value: Any, remainders: list[tuple[str, ...]]) -> Any:
    """Return a copy of ``value`` without the keys at ``remainders``."""
    if not remainders or value is None:
        return value
    if isinstance(value, list):
        return [drop_paths(item, remainders) for item in value]
    if not isinstance(value, dict):
        return value

    kept: dict[str, Any] = {}
    for key, item in value.items():
        here = [rest[1:] for rest in remainders if rest[0] in (key, ANY_KEY)]
        if any(not rest for rest in here):
            continue
        kept[key] = drop_paths(item, here) if here else item

    return kept


def keep_paths(value: Any, remainders: list[tuple[str, ...]]) -> Any:
    """Return a copy of ``value`` with only the keys at ``remainders``.

    ``None`` stands for "nothing kept": a scalar, a dict holding none of the
    paths, a list none of whose elements holds one.
    """
    if any(not rest for rest in remainders):
        return value
    if isinstance(value, list):
        items = [keep_paths(item, remainders) for item in value]
        return items if any(item is not None for item in items) else None
    if not isinstance(value, dict):
        return None

    kept: dict[str, Any] = {}
    for key, item in value.items():
        here = [rest[1:] for rest in remainders if rest[0] in (key, ANY_KEY)]
        if here:
            projected = keep_paths(item, here)
            if projected is not None:
                kept[key] = projected

    return kept or None


def mask_changes(
    changes: list[Change], matcher: PathMatcher, pattern: str
) -> list[Change]:
    """Mask ``from`` and ``to`` of every change touched by ``matcher``'s paths."""
    if not matcher:
        return changes

    masked: list[Change] = []
    for change in changes:
        path = change["path"]
        if matcher.covers(path):
            change = {
                **change,
                "from": None if change["from"] is None else pattern,
                "to": None if change["to"] is None else pattern,
            }
        else:
            remainders = matcher.remainders(path)
            if remainders:
                change = {
                    **change,
                    "from": mask_value(change["from"], remainders, pattern),
                    "to": mask_value(change["to"], remainders, pattern),
                }
        masked.append(change)

    return masked
