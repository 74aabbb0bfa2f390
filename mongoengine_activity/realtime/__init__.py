"""Live activity streams and their web endpoints.

The core (:mod:`.stream`) needs no web framework. The endpoints live in
:mod:`.flask`, :mod:`.django` and :mod:`.starlette` (also for FastAPI), and
import their framework only when imported themselves.
"""

from __future__ import annotations

from .stream import (
    ActivityStream,
    StreamEvent,
    StreamOverflow,
    activity_payload,
    aiter_sse,
    create_activity_stream,
    describe_activity,
    iter_sse,
    sse_comment,
)

__all__ = [
    "ActivityStream",
    "StreamEvent",
    "StreamOverflow",
    "activity_payload",
    "aiter_sse",
    "create_activity_stream",
    "describe_activity",
    "iter_sse",
    "sse_comment",
]
