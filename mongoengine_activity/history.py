"""Rebuilding a tracked document as it was at a moment, from its activities.

``Order.history(pk).at(when)`` replays the document's create, update and
delete activities up to ``when`` (inclusive) on an empty document, following
the rules of :mod:`~mongoengine_activity.diff`:

- a path into a mapping sets that key; a change to ``None`` removes it (the
  diff reads a missing key as ``None``, so the two cannot be told apart);
- a path ending in a list index sets that element, or appends it when the
  index is the list's length (a list that grew);
- a change of a whole list (a list that shrank) replaces it.

Only tracked fields can come back: excluded fields were never recorded,
masked ones come back as the mask, and values over the size cap as their
truncation marker. Activities removed by ``ttl``, ``max_per_entity``,
pruning or archiving are gone from the replay too.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from typing import Any

from ._bson import normalize, truncate_ms
from ._paths import PathNames
from .diff import Change
from .models import Activity
from .tenancy import scope_query

__all__ = ["History", "apply_changes"]


def _set_path(state: dict[str, Any], parts: list[str], value: Any) -> None:
    holder: Any = state
    for position, part in enumerate(parts[:-1]):
        following = parts[position + 1]
        empty: Any = [] if following.isdigit() else {}
        if isinstance(holder, list):
            index = int(part)
            while len(holder) <= index:
                holder.append(None)
            if not isinstance(holder[index], dict | list):
                holder[index] = empty
            holder = holder[index]
        else:
            if not isinstance(holder.get(part), dict | list):
                holder[part] = empty
            holder = holder[part]

    last = parts[-1]
    if isinstance(holder, list):
        index = int(last)
        while len(holder) <= index:
            holder.append(None)
        holder[index] = value
    elif value is None:
        holder.pop(last, None)
    else:
        holder[last] = value


def apply_changes(
    state: dict[str, Any], changes: Iterable[Change], *, stored_path: Any = None
) -> dict[str, Any]:
    """Apply ``changes`` (``{path, from, to}``) to ``state`` in place; return it.

    ``stored_path`` turns a change's path into the stored (db_field) path.
    """
    for change in changes:
        path = change["path"] if stored_path is None else stored_path(change["path"])
        _set_path(state, path.split("."), copy.deepcopy(change["to"]))

    return state


class History:
    """The activities of one tracked document, and its state at any moment."""

    def __init__(self, document: type[Any], pk: Any) -> None:
        options = document.activity_options()
        self.document = document
        self.pk = pk
        self.entity_type = options.entity_type_for(document)
        self._verbs = {
            options.verb(document, kind): kind
            for kind in ("create", "update", "delete")
        }
        self._paths = PathNames(document, by_attribute=True)

    def _query(self, until: dt.datetime | None) -> dict[str, Any]:
        query: dict[str, Any] = {
            "entity.type": self.entity_type,
            "entity.id": normalize(self.pk),
            "type": {"$in": list(self._verbs)},
        }
        if until is not None:
            query["createdAt"] = {"$lte": truncate_ms(until)}

        return query

    def activities(self, until: dt.datetime | None = None) -> Any:
        """The document's create, update and delete activities, oldest first."""
        return Activity.objects(__raw__=self._query(until)).order_by("created_at", "id")

    def at(self, when: dt.datetime) -> dict[str, Any] | None:
        """The tracked fields as stored at ``when`` (stored names, BSON values),
        with ``_id``; ``None`` if the document did not exist then. With
        multi-tenancy, only the tenant in the context is read."""
        state: dict[str, Any] | None = None
        cursor = (
            Activity._get_collection()
            .find(scope_query(self._query(when)), {"type": 1, "changes": 1})
            .sort([("createdAt", 1), ("_id", 1)])
        )
        for son in cursor:
            kind = self._verbs[son["type"]]
            if kind == "delete":
                state = None
                continue
            if kind == "create" or state is None:
                state = {}
            apply_changes(state, son.get("changes") or (), stored_path=self._paths)

        if state is None:
            return None
        return {"_id": normalize(self.pk), **state}

    def document_at(self, when: dt.datetime) -> Any:
        """:meth:`at` as a document instance (not saved), or ``None``."""
        state = self.at(when)
        return None if state is None else self.document._from_son(state)
