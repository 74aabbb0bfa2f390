"""Write-behind mode: activities queued in memory and inserted in batches.

Off by default: every activity is inserted before the save (or
``log_activity``) returns. :func:`enable_write_behind` switches to a bounded
queue drained by one background thread with unordered ``insert_many``; the
application's write returns after masking, signals and limits, without
waiting for the activity's insert.

The durability trade-off: queued activities live only in this process's
memory. They are written at the next batch (``interval`` seconds at most),
on :func:`flush`, and at interpreter exit (``atexit``), but a crash, a
``kill -9`` or a power cut loses whatever is still queued, and a failed insert
is reported on ``activity_failed`` after the application's write has already
succeeded (``on_error="raise"`` cannot raise into it). A repeated ``event_id``
is skipped by the unique index, but the caller receives its own copy rather
than the activity stored first.

When the queue is full, ``when_full="block"`` (the default) makes the writer
wait for room, so nothing is lost and the application slows to the
database's pace; ``when_full="drop"`` drops the activity at once, logs a
WARNING and sends ``activity_dropped`` with ``reason="queue_full"``.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bson import ObjectId

if TYPE_CHECKING:
    from .models import Activity
    from .writer import WriteRequest

__all__ = [
    "WriteBehind",
    "disable_write_behind",
    "enable_write_behind",
    "flush",
    "pending",
]

logger = logging.getLogger("mongoengine_activity")


@dataclass(slots=True)
class _Queued:
    request: WriteRequest
    son: dict[str, Any]
    activity: Activity | None


class WriteBehind:
    """A bounded queue of activities and the thread that inserts them."""

    def __init__(
        self,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        interval: float = 0.2,
        when_full: Literal["block", "drop"] = "block",
    ) -> None:
        if max_queue < 1 or batch_size < 1 or interval <= 0:
            raise ValueError(
                "write-behind needs max_queue >= 1, batch_size >= 1, interval > 0"
            )
        if when_full not in ("block", "drop"):
            raise ValueError('when_full must be "block" or "drop"')
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval = interval
        self.when_full = when_full
        self._items: deque[_Queued] = deque()
        self._in_flight = 0
        self._closed = False
        self._lock = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="mongoengine-activity-write-behind", daemon=True
        )
        self._thread.start()

    @property
    def pending(self) -> int:
        """Activities queued or being inserted, not yet stored."""
        with self._lock:
            return len(self._items) + self._in_flight

    def put(self, request: WriteRequest, son: dict[str, Any], activity: Any) -> bool:
        """Queue one activity; False when it was dropped because the queue is full."""
        with self._lock:
            while len(self._items) >= self.max_queue and not self._closed:
                if self.when_full == "drop":
                    return False
                self._lock.wait()
            self._items.append(_Queued(request, son, activity))
            if len(self._items) >= self.batch_size:
                self._lock.notify_all()

        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is stored; False on timeout."""
        with self._lock:
            self._lock.notify_all()
            return self._lock.wait_for(
                lambda: not self._items and not self._in_flight, timeout
            )

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the thread; False when items were still pending."""
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout)
        return flushed

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._items:
                    if self._closed:
                        return
                    self._lock.wait(self.interval)
                if len(self._items) < self.batch_size and not self._closed:
                    # Give a batch a moment to fill, unless someone flushes.
                    self._lock.wait(self.interval)
                batch = [
                    self._items.popleft()
                    for _ in range(min(self.batch_size, len(self._items)))
                ]
                self._in_flight = len(batch)
                self._lock.notify_all()
            try:
                if batch:
                    _write(batch)
            except Exception:  # pragma: no cover - _write reports per item
                logger.exception("write-behind batch failed")
            finally:
                with self._lock:
                    self._in_flight = 0
                    self._lock.notify_all()


def _write(batch: list[_Queued]) -> None:
    from .bulk import finish_stored, insert_chunk, report_unstored
    from .models import Activity

    outcome = insert_chunk(Activity._get_collection(), [item.son for item in batch])
    for index, error in outcome.errors.items():
        item = batch[index]
        report_unstored(item.request, item.son, item.activity, error)
    for index in outcome.inserted:
        item = batch[index]
        finish_stored(item.request, item.son, item.activity)


_state_lock = threading.Lock()
_active: WriteBehind | None = None


def enable_write_behind(
    *,
    max_queue: int = 10_000,
    batch_size: int = 500,
    interval: float = 0.2,
    when_full: Literal["block", "drop"] = "block",
) -> WriteBehind:
    """Queue activities and insert them in batches from a background thread.

    See the module documentation for what this trades away. Calling it again
    flushes and replaces the current queue.
    """
    global _active
    with _state_lock:
        previous, _active = (
            _active,
            WriteBehind(
                max_queue=max_queue,
                batch_size=batch_size,
                interval=interval,
                when_full=when_full,
            ),
        )
    if previous is not None:
        previous.close()

    return _active


def disable_write_behind(timeout: float | None = None) -> bool:
    """Flush the queue, stop the thread and write synchronously again."""
    global _active
    with _state_lock:
        previous, _active = _active, None
    return previous.close(timeout) if previous is not None else True


def flush(timeout: float | None = None) -> bool:
    """Wait until every queued activity is stored; False if ``timeout`` passed."""
    current = _active
    return current.flush(timeout) if current is not None else True


def pending() -> int:
    """How many queued activities are not stored yet (0 when writing directly)."""
    current = _active
    return current.pending if current is not None else 0


def enqueue(request: WriteRequest, son: dict[str, Any], activity: Any) -> bool | None:
    """Queue ``son`` when write-behind is on: True when queued, False when
    dropped because the queue is full, None when it must be written now."""
    current = _active
    if current is None:
        return None

    son.setdefault("_id", ObjectId())
    if current.put(request, son, activity):
        return True

    from .writer import report_drop

    report_drop(son, request.sender, "queue_full")
    return False


@atexit.register
def _flush_at_exit() -> None:
    current = _active
    if current is not None and not current.flush(timeout=30):
        logger.warning(
            "write-behind: %d activities were still queued at exit and are lost",
            current.pending,
        )
