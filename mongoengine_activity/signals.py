"""The blinker signals of mongoengine-activity.

Each is sent with the tracked model class (or ``Activity`` for manual logs) as
sender and the activity as the ``activity`` keyword argument:

- ``before_log``: before anything is stored; receivers may modify the activity,
  and a receiver that returns ``False`` cancels it;
- ``activity_logged``: after it is stored;
- ``activity_dropped``: when dedup or a rate limit drops it (``reason=``);
- ``activity_failed``: when writing it failed (``error=``).

Async receivers are supported: from code with no running event loop they are
run to completion; inside a running loop they are scheduled as tasks, so they
cannot cancel ``before_log`` (a coroutine's result comes too late), and an
error they raise is logged (its type only) on the ``mongoengine_activity``
logger.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from blinker import Namespace, Signal

__all__ = [
    "activity_dropped",
    "activity_failed",
    "activity_logged",
    "before_log",
    "namespace",
]

logger = logging.getLogger("mongoengine_activity")

namespace = Namespace()

before_log: Signal = namespace.signal(
    "before_log", doc="Sent before an activity is stored; return False to cancel."
)
activity_logged: Signal = namespace.signal(
    "activity_logged", doc="Sent after an activity is stored."
)
activity_dropped: Signal = namespace.signal(
    "activity_dropped", doc="Sent when dedup or a rate limit drops an activity."
)
activity_failed: Signal = namespace.signal(
    "activity_failed", doc="Sent when an activity could not be written."
)

# Who is running our receivers: (thread id, asyncio task or None). Tasks and
# threads that a receiver starts copy this variable, but they are not its
# owner, so their writes are tracked as usual.
_Owner = tuple[int, "asyncio.Task[Any] | None"]
_dispatching: contextvars.ContextVar[_Owner | None] = contextvars.ContextVar(
    "mongoengine_activity_dispatching", default=None
)
_pending_tasks: set[asyncio.Task[Any]] = set()


def _owner() -> _Owner:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None

    return threading.get_ident(), task


def dispatching() -> bool:
    """True while our signals' receivers run in this very thread or task."""
    owner = _dispatching.get()
    if owner is None:
        return False

    thread, task = _owner()
    return owner[0] == thread and owner[1] is task


@contextmanager
def _in_receivers() -> Iterator[None]:
    token = _dispatching.set(_owner())
    try:
        yield
    finally:
        _dispatching.reset(token)


def _run_async(receiver: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    def call(sender: Any, **kwargs: Any) -> Any:
        coroutine = receiver(sender, **kwargs)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_await(coroutine))

        task = loop.create_task(_await(coroutine))
        _pending_tasks.add(task)
        task.add_done_callback(_pending_tasks.discard)
        task.add_done_callback(functools.partial(_report_error, receiver))
        return None

    return call


async def _await(awaitable: Awaitable[Any]) -> Any:
    # The receiver runs as its own task: writes it makes are not tracked.
    with _in_receivers():
        return await awaitable


def _report_error(receiver: Callable[..., Any], task: asyncio.Task[Any]) -> None:
    """Log the error of an async receiver scheduled in a running loop (its
    type only: the message may hold activity values)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error(
            "an async receiver %s raised %s",
            getattr(receiver, "__qualname__", repr(receiver)),
            type(error).__name__,
        )


def send(signal: Signal, sender: Any, **kwargs: Any) -> list[tuple[Any, Any]]:
    """Send ``signal`` to its receivers for ``sender``, sync or async.

    While receivers run, writes they make to tracked documents are not
    tracked, so a receiver that saves a document never recurses into the log.
    """
    if not signal.has_receivers_for(sender):
        return []

    with _in_receivers():
        result: list[tuple[Any, Any]] = signal.send(
            sender, _async_wrapper=_run_async, **kwargs
        )
        return result


def has_receivers(signal: Signal, sender: Any) -> bool:
    """True when ``signal`` has a receiver for ``sender`` (or for any sender)."""
    return bool(signal.has_receivers_for(sender))
