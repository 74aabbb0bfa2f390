"""Following a dotted path through a document class's fields.

Model-layer helpers shared by tracking (stored names to attribute names, and
checking option paths) and history (attribute names to stored names).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mongoengine.fields import DictField, EmbeddedDocumentField, ListField

__all__ = ["PathNames", "field_named", "state_below", "walk_path"]


def walk_path(
    document: type[Any], path: str, *, by_attribute: bool
) -> Iterator[tuple[Any, str, str | None]]:
    """Yield ``(owner, part, other_name)`` for each part of a dotted path.

    ``owner`` is the document class whose field ``part`` names (``None`` for
    list indices, map keys and anything below an undeclared field);
    ``other_name`` is that field's stored name when ``by_attribute`` and its
    attribute name otherwise, or ``None`` when ``part`` names no field of
    ``owner``. Below a ``DictField`` or ``MapField`` the next part is a free
    key, and the part after it belongs to the inner field's document.
    """
    state: tuple[str, Any] = ("doc", document)
    for part in path.split("."):
        while state[0] == "list" and not part.isdigit():
            state = state_below(state[1])
        kind, holder = state
        if kind == "doc":
            field = field_named(holder, part, by_attribute)
            if field is None:
                yield holder, part, None
                state = ("free", None)
                continue
            yield holder, part, field.db_field if by_attribute else field.name
            state = state_below(field)
        elif kind in ("list", "key"):
            yield None, part, part
            state = state_below(holder)
        else:
            yield None, part, part


def field_named(owner: Any, part: str, by_attribute: bool) -> Any:
    if by_attribute:
        return owner._fields.get(part)
    for candidate in owner._fields.values():
        if candidate.db_field == part:
            return candidate

    return None


def state_below(field: Any) -> tuple[str, Any]:
    """Where the part after ``field``'s own part points."""
    if isinstance(field, DictField):
        return ("key", field.field)
    if isinstance(field, ListField):
        return ("list", field.field)
    if isinstance(field, EmbeddedDocumentField):
        document_type = field.document_type
        if hasattr(document_type, "_fields"):
            return ("doc", document_type)

    return ("free", None)


class PathNames:
    """Translates dotted paths of one document class between stored names and
    attribute names, caching each translation.

    ``by_attribute=False`` turns stored paths into attribute paths (as
    activities record them); ``by_attribute=True`` turns them back.
    """

    def __init__(self, document: type[Any], *, by_attribute: bool) -> None:
        self._document = document
        self._by_attribute = by_attribute
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        cached = self._cache.get(path)
        if cached is None:
            cached = self._cache[path] = ".".join(
                part if name is None else name
                for _, part, name in walk_path(
                    self._document, path, by_attribute=self._by_attribute
                )
            )

        return cached
