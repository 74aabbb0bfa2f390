"""Diffing plain BSON-shaped values into ``{path, from, to}`` changes.

Pure functions on normalised values (see :func:`mongoengine_activity._bson.normalize`),
with no database access, so that document saves, queryset updates and
change-stream events share one definition of "what changed".

The rules, chosen so that every change is exact and can be replayed:

- mappings are compared key by key (``address.city``); a missing key reads as
  ``None``;
- lists of the same length are compared element by element (``items.2.qty``);
- a list that grew is compared element by element over its old length, then
  yields one change per appended element (``items.3`` from ``None``);
- a list that shrank, or grew by a ``None``, is one change of the whole list
  (which element went is ambiguous, and a change from ``None`` to ``None``
  would say nothing; a whole-list change replays exactly);
- leaves are compared with MongoDB's equality (decimals by value), so an
  unchanged value never shows as changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._bson import leaf_equal

__all__ = ["Change", "diff", "diff_fields", "join_path"]

Change = dict[str, Any]

_MISSING: Any = object()


def join_path(prefix: str, key: str | int) -> str:
    """Join a dotted path and one more key or list index."""
    return f"{prefix}.{key}" if prefix else str(key)


def diff(before: Any, after: Any, path: str = "") -> list[Change]:
    """Return the changes that turn ``before`` into ``after``, under ``path``."""
    changes: list[Change] = []
    _diff_into(changes, path, before, after)
    return changes


def diff_fields(
    before: Mapping[str, Any], after: Mapping[str, Any], keys: Iterable[str]
) -> list[Change]:
    """Diff the top-level ``keys`` of two documents, in the order given."""
    changes: list[Change] = []
    for key in keys:
        _diff_into(changes, key, before.get(key, _MISSING), after.get(key, _MISSING))

    return changes


def _diff_into(out: list[Change], path: str, before: Any, after: Any) -> None:
    if before is after:
        return
    if before is _MISSING or after is _MISSING:
        if before is _MISSING:
            before = None
        if after is _MISSING:
            after = None
        if before is None and after is None:
            return

    if type(before) is type(after) and _fast_equal(before, after):
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in _union_keys(before, after):
            _diff_into(
                out,
                join_path(path, key),
                before.get(key, _MISSING),
                after.get(key, _MISSING),
            )
        return
    if isinstance(before, list) and isinstance(after, list):
        _diff_lists(out, path, before, after)
        return
    if before is None or after is None or not leaf_equal(before, after):
        out.append({"path": path, "from": before, "to": after})


def _fast_equal(before: Any, after: Any) -> bool:
    try:
        return bool(before == after)
    except Exception:
        return False


def _diff_lists(
    out: list[Change], path: str, before: list[Any], after: list[Any]
) -> None:
    if len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            _diff_into(out, join_path(path, index), old, new)
        return

    appended = after[len(before) :]
    # A shrunk list, or one grown by a null (a change "from None to None" would
    # say nothing), is one change of the whole list.
    if len(after) < len(before) or any(item is None for item in appended):
        out.append({"path": path, "from": before, "to": after})
        return

    for index, old in enumerate(before):
        _diff_into(out, join_path(path, index), old, after[index])
    for index in range(len(before), len(after)):
        out.append({"path": join_path(path, index), "from": None, "to": after[index]})


def _union_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    keys = list(before)
    keys.extend(key for key in after if key not in before)
    return keys
