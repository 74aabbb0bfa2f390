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
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import bson

from ._bson import normalize
from .errors import ValidationError

__all__ = [
    "ContextSnapshot",
    "Deferred",
    "activity_context",
    "capture_context",
    "current_context",
    "deferred",
    "run_with_context",
    "tracking_disabled",
    "tracking_enabled",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

logger = logging.getLogger("mongoengine_activity")

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


class Deferred:
    """A context value computed when an activity is written, not when it is set.

    Middleware uses it for the user, who is often known only after the request
    started (authentication inside the view), and for the trace id of the span
    active at write time. The function takes no arguments and is called once
    per activity written; if it raises, the failure is logged (without the
    value) and the key is treated as missing.
    """

    __slots__ = ("function",)

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function

    def __repr__(self) -> str:
        return f"deferred({self.function!r})"

    def resolve(self, key: str) -> Any:
        try:
            return self.function()
        except Exception as error:
            # The type only: the message may hold request data.
            logger.warning(
                "the context value %r could not be computed: %s",
                key,
                type(error).__name__,
            )
            return None


def deferred(function: Callable[[], Any]) -> Deferred:
    """Mark ``function`` as a context value computed when an activity is written.

    ``activity_context(user_id=deferred(lambda: request.user.pk))`` asks for the
    user each time an activity is filled, so a user who logs in during the
    request is recorded from then on.
    """
    return Deferred(function)


def _resolved(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value.resolve(key) if isinstance(value, Deferred) else value
        for key, value in values.items()
    }


def _stored_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    return {CONTEXT_KEYS.get(key, key): value for key, value in values.items()}


def _check_entry(key: str, value: Any) -> None:
    """Refuse a key or value the activity could not store, naming the key.

    Deferred values are checked when computed; the tenant is checked by the
    tenancy rules (it may be ``ALL_TENANTS``)."""
    if key.startswith("$") or "." in key or "\x00" in key:
        raise ValidationError(
            f"activity_context(): key {key!r} may not start with '$' or contain "
            "'.' or NUL",
            field=key,
        )
    if key == "tenant" or value is None or isinstance(value, Deferred):
        return
    try:
        bson.encode({"v": normalize(value)})
    except (bson.errors.InvalidDocument, OverflowError) as error:
        raise ValidationError(
            f"activity_context(): {key}: cannot be stored in MongoDB: {error}",
            field=key,
        ) from None


def _merge(new: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType({**_values.get(), **new})


class activity_context:
    """Set who is acting and in which request, for a block or a function.

    ``user_id``, ``tenant`` and ``team_id`` fill the activity's own fields;
    ``request_id``, ``ip``, ``user_agent``, ``trace_id`` and any extra keyword
    go into its ``context`` (as ``requestId``, ``ip``, ``userAgent``,
    ``traceId`` and the extra names). Use it as ``with activity_context(...):``
    or as a decorator on a plain or ``async`` function. Inner keys win over
    outer ones; a key set to ``None`` hides the outer value. On exit, also on an
    exception, the outer context is back.

    One instance may be entered by many threads or tasks at once, and nested in
    itself. Generator functions cannot be decorated (a generator suspended
    inside the context would leak it to its caller); use ``with`` around the
    code that writes instead.
    """

    def __init__(self, **values: Any) -> None:
        for key, value in values.items():
            _check_entry(key, value)
        self._new = _stored_keys(values)
        self._lock = threading.Lock()
        # (token, value set) per entry not yet exited, in any thread or task.
        self._entered: list[tuple[contextvars.Token[Mapping[str, Any]], object]] = []

    def __enter__(self) -> Mapping[str, Any]:
        merged = _merge(self._new)
        token = _values.set(merged)
        with self._lock:
            self._entered.append((token, merged))

        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Entries of other threads or tasks may sit on top of ours; the value
        # in force here identifies which entry this exit closes.
        in_force = _values.get()
        with self._lock:
            for index in range(len(self._entered) - 1, -1, -1):
                token, merged = self._entered[index]
                if merged is in_force:
                    del self._entered[index]
                    break
            else:
                raise RuntimeError(
                    "activity_context exited out of order: close inner contexts "
                    "before outer ones, in the thread or task that opened them"
                )
        _values.reset(token)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(
            function
        ):
            raise TypeError(
                f"activity_context cannot decorate the generator function "
                f"{function.__qualname__}: use 'with activity_context(...)' inside "
                "it around the code that writes"
            )
        new = self._new

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                token = _values.set(_merge(new))
                try:
                    return await cast(Callable[P, Awaitable[Any]], function)(
                        *args, **kwargs
                    )
                finally:
                    _values.reset(token)

            return cast(Callable[P, R], run_async)

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            token = _values.set(_merge(new))
            try:
                return function(*args, **kwargs)
            finally:
                _values.reset(token)

        return run


def current_context() -> dict[str, Any]:
    """Return a copy of the values in force, with stored key names.

    ``user_id``, ``tenant`` and ``team_id`` keep their names; the others are
    named as stored in an activity's ``context`` (``requestId``, ``ip``,
    ``userAgent``, ``traceId``, extras). Deferred values are computed now.
    """
    return _resolved(_values.get())


def context_value(key: str, default: Any = None) -> Any:
    """One value in force (computed now if deferred), or ``default`` if unset.

    For code that needs one key on every call, such as the tenant a query is
    scoped to, without computing the other deferred values.
    """
    values = _values.get()
    if key not in values:
        return default

    value = values[key]
    return value.resolve(key) if isinstance(value, Deferred) else value


@dataclass(frozen=True)
class ContextSnapshot:
    """What :func:`capture_context` took: the values and the tracking switch.

    Deferred values were computed when the snapshot was taken, so a snapshot
    holds plain values and can be pickled, to hand to a job queue.
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    tracking_disabled: bool = False


def capture_context() -> ContextSnapshot:
    """Take the current context, to run work elsewhere with it."""
    return ContextSnapshot(values=current_context(), tracking_disabled=_disabled.get())


def run_with_context(
    snapshot: ContextSnapshot,
    function: Callable[P, R],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """Call ``function`` inside ``snapshot``, as in a thread pool or a job.

    The snapshot replaces the context in force for the call (it is not merged
    with it) and the previous context is back afterwards. For a coroutine
    function, the returned coroutine runs inside the snapshot when awaited.
    """
    values = MappingProxyType(dict(snapshot.values))
    if inspect.iscoroutinefunction(function):

        async def run_async() -> Any:
            values_token = _values.set(values)
            disabled_token = _disabled.set(snapshot.tracking_disabled)
            try:
                return await cast(Callable[P, Awaitable[Any]], function)(
                    *args, **kwargs
                )
            finally:
                _disabled.reset(disabled_token)
                _values.reset(values_token)

        return cast(R, run_async())

    values_token = _values.set(values)
    disabled_token = _disabled.set(snapshot.tracking_disabled)
    try:
        return function(*args, **kwargs)
    finally:
        _disabled.reset(disabled_token)
        _values.reset(values_token)


@contextmanager
def collecting(
    sink_var: contextvars.ContextVar[list[T] | None],
) -> Iterator[list[T]]:
    """Set ``sink_var`` to a fresh list for the block and yield it, so code
    further down the call stack can hand values back to the caller."""
    sink: list[T] = []
    token = sink_var.set(sink)
    try:
        yield sink
    finally:
        sink_var.reset(token)


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
