"""Replaying logged changes onto a stored document, as the tests check them."""

from __future__ import annotations

from typing import Any

from mongoengine_activity._bson import normalize


def set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` to ``value`` like a change's ``to`` (``None`` removes a key;
    the index just past a list's end appends)."""
    parts = path.split(".")
    holder: Any = document
    for part in parts[:-1]:
        if isinstance(holder, list):
            holder = holder[int(part)]
        else:
            holder = holder.setdefault(part, {})
    last = parts[-1]
    if isinstance(holder, list):
        index = int(last)
        if index == len(holder):
            holder.append(value)
        else:
            holder[index] = value
    elif value is None:
        holder.pop(last, None)
    else:
        holder[last] = value


def without_nones(value: Any) -> Any:
    """``value`` with ``None`` dict values dropped: missing and null read alike."""
    if isinstance(value, dict):
        return {k: without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) for v in value]
    return value


def replay(before: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """``before`` with every change's ``to`` applied, in order."""
    replayed: dict[str, Any] = normalize(before)
    for change in changes:
        set_path(replayed, change["path"], normalize(change["to"]))
    return replayed
