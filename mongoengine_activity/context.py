"""Who is acting and in which request, carried on ``contextvars``.

``activity_context(...)`` sets values for a block or a function; every activity
written inside, automatic or manual, is filled from them. Contexts nest (inner
keys win, the outer context comes back on exit, also on an exception) and never
leak between threads, asyncio tasks or requests.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "ContextSnapshot",
    "activity_context",
    "capture_context",
    "current_context",
    "run_with_context",
    "tracking_disabled",
    "tracking_enabled",
]

P = ParamSpec("P")
R = TypeVar("R")

_EMPTY: Mapping[str, Any] = MappingProxyType({})

_values: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "mongoengine_activity_context", default=_EMPTY
)
_disabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mongoengine_activity_disabled", default=False
)

# Keyword names of activity_context() and the keys they are stored under.
CONTEXT_KEYS = {
    "request_id": "requestId",
    "ip": "ip",
    "user_agent": "userAgent",
    "trace_id": "traceId",
}
# Keys that fill an activity's own fields rather than its ``context``.
FIELD_KEYS = ("user_id", "tenant", "team_id")


@contextmanager
def _pushed(new: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    merged = MappingProxyType({**_values.get(), **new})
    token = _values.set(merged)
    try:
        yield merged
    finally:
        _values.reset(token)


class activity_context:
    """Set who is acting and in which request, for a block or a function.

    ``user_id``, ``tenant`` and ``team_id`` fill the activity's own fields;
    ``request_id``, ``ip``, ``user_agent``, ``trace_id`` and any extra keyword
    go into its ``context`` (as ``requestId``, ``ip``, ``userAgent``,
    ``traceId`` and the extra names). Use it as ``with activity_context(...):``
    or as a decorator on a plain or ``async`` function.
    """

    def __init__(self, **values: Any) -> None:
        self._new = {CONTEXT_KEYS.get(key, key): value for key, value in values.items()}
        self._active: list[AbstractContextManager[Mapping[str, Any]]] = []

    def __enter__(self) -> Mapping[str, Any]:
        pushed = _pushed(self._new)
        self._active.append(pushed)
        return pushed.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._active.pop().__exit__(exc_type, exc, tb)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        new = self._new

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with _pushed(new):
                    return await function(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with _pushed(new):
                return function(*args, **kwargs)

        return run


def current_context() -> dict[str, Any]:
    """Return a copy of the values in force, with stored key names."""
    return dict(_values.get())


@dataclass(frozen=True)
class ContextSnapshot:
    """What :func:`capture_context` took: the values and the tracking switch."""

    values: Mapping[str, Any]
    tracking_disabled: bool


def capture_context() -> ContextSnapshot:
    """Take the current context, to run work elsewhere with it."""
    return ContextSnapshot(values=_values.get(), tracking_disabled=_disabled.get())


def run_with_context(
    snapshot: ContextSnapshot,
    function: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Call ``function`` inside ``snapshot``, as in a thread pool or a job."""
    values_token = _values.set(snapshot.values)
    disabled_token = _disabled.set(snapshot.tracking_disabled)
    try:
        return function(*args, **kwargs)
    finally:
        _disabled.reset(disabled_token)
        _values.reset(values_token)


@contextmanager
def tracking_disabled() -> Iterator[None]:
    """Write no automatic activities in this block (this thread or task only)."""
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


def tracking_enabled() -> bool:
    """True unless :func:`tracking_disabled` is in force here."""
    return not _disabled.get()
