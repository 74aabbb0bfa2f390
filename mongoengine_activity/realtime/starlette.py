"""Server-Sent Events and WebSocket endpoints for Starlette and FastAPI.

.. code-block:: text

    app = Starlette(routes=activity_routes(filters=lambda request: {
        "user_id": request.user.identity}))

The SSE endpoint honours ``Last-Event-ID`` (or ``?last_event_id=`` for a
first connection); the WebSocket endpoint takes ``?last_event_id=``. Each sends
a heartbeat every ``heartbeat`` seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from bson import json_util
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._options import SSE_HEADERS, FiltersFor, stream_options
from .stream import ActivityStream, StreamOverflow, aiter_sse, open_from_request

__all__ = ["activity_routes", "sse_endpoint", "websocket_endpoint"]

# "Try again later": the client was too slow and should reconnect and resume.
_CLOSE_OVERFLOW = 1013


def sse_endpoint(
    *,
    filters: FiltersFor | None = None,
    heartbeat: float = 15.0,
    **options: Any,
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint streaming activities as Server-Sent Events.

    ``filters(request)`` returns the stream filters for a request (such as
    ``{"user_id": ...}``); ``options`` are further
    :func:`~mongoengine_activity.realtime.create_activity_stream` arguments.
    """

    async def endpoint(request: Request) -> Response:
        last_event_id = request.headers.get("last-event-id") or (
            request.query_params.get("last_event_id")
        )
        chosen = stream_options(options, filters, request)
        stream = await asyncio.to_thread(open_from_request, last_event_id, chosen)
        return StreamingResponse(
            aiter_sse(stream, heartbeat=heartbeat),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    return endpoint


def _message(kind: str, **values: Any) -> str:
    return json_util.dumps(
        {"type": kind, **values}, json_options=json_util.RELAXED_JSON_OPTIONS
    )


async def _pump(websocket: WebSocket, stream: ActivityStream, heartbeat: float) -> None:
    while not stream.closed:
        try:
            event = await stream.anext(timeout=heartbeat)
        except StreamOverflow as overflow:
            await websocket.send_text(
                _message("overflow", last_event_id=overflow.last_event_id)
            )
            await websocket.close(code=_CLOSE_OVERFLOW)
            return
        if event is None:
            await websocket.send_text(json.dumps({"type": "heartbeat"}))
        else:
            await websocket.send_text(
                _message("activity", id=event.id, activity=event.payload())
            )


async def _until_closed(websocket: WebSocket) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return


def websocket_endpoint(
    *,
    filters: FiltersFor | None = None,
    heartbeat: float = 15.0,
    **options: Any,
) -> Callable[[WebSocket], Awaitable[None]]:
    """A WebSocket endpoint sending each activity as a JSON message.

    Messages are ``{"type": "activity", "id": ..., "activity": {...}}``,
    ``{"type": "heartbeat"}``, and, when a slow client overflowed the stream
    (``overflow="disconnect"``), ``{"type": "overflow", "last_event_id": ...}``
    before the socket closes with code 1013.
    """

    async def endpoint(websocket: WebSocket) -> None:
        chosen = stream_options(options, filters, websocket)
        last_event_id = websocket.query_params.get("last_event_id")
        # Open before accepting: whatever is logged once the client is
        # connected reaches it.
        stream = await asyncio.to_thread(open_from_request, last_event_id, chosen)
        await websocket.accept()
        try:
            async with anyio.create_task_group() as group:

                async def pump() -> None:
                    await _pump(websocket, stream, heartbeat)
                    group.cancel_scope.cancel()

                async def watch() -> None:
                    await _until_closed(websocket)
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                group.start_soon(watch)
        except WebSocketDisconnect:
            pass
        finally:
            stream.close()

    return endpoint


def activity_routes(
    *,
    sse_path: str = "/activities/stream",
    websocket_path: str = "/activities/ws",
    filters: FiltersFor | None = None,
    heartbeat: float = 15.0,
    **options: Any,
) -> list[BaseRoute]:
    """Routes for both endpoints, ready for ``Starlette(routes=...)`` or FastAPI."""
    return [
        Route(
            sse_path,
            sse_endpoint(filters=filters, heartbeat=heartbeat, **options),
            methods=["GET"],
        ),
        WebSocketRoute(
            websocket_path,
            websocket_endpoint(filters=filters, heartbeat=heartbeat, **options),
        ),
    ]
