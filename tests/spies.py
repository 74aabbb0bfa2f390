"""A spy that records which collection methods application code calls."""

from __future__ import annotations

import functools
from types import TracebackType
from typing import Any

import pytest

_METHODS = (
    "find",
    "find_one",
    "find_one_and_replace",
    "find_one_and_update",
    "aggregate",
    "count_documents",
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
)


class CollectionSpy:
    """Records the outermost calls made on one document class's collection.

    Calls a backend makes to itself (mongomock's ``delete_many`` uses its own
    ``find``) are not recorded: only what the code under test asked for.
    """

    def __init__(self, document: Any) -> None:
        self._collection = document._get_collection()
        self._patch = pytest.MonkeyPatch()
        self._depth = 0
        self.calls: list[str] = []

    def __enter__(self) -> CollectionSpy:
        collection_type = type(self._collection)
        for name in _METHODS:
            original = getattr(collection_type, name)
            self._patch.setattr(collection_type, name, self._wrap(name, original))
        return self

    def _wrap(self, name: str, original: Any) -> Any:
        spied = self._collection.full_name

        @functools.wraps(original)
        def call(collection: Any, *args: Any, **kwargs: Any) -> Any:
            if collection.full_name == spied and self._depth == 0:
                self.calls.append(name)
            self._depth += 1
            try:
                return original(collection, *args, **kwargs)
            finally:
                self._depth -= 1

        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._patch.undo()
