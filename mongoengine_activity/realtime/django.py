"""A Server-Sent Events view for Django.

.. code-block:: text

    urlpatterns = [path("activities/stream", sse_view(
        filters=lambda request: {"user_id": request.user.pk}))]

Under ASGI the response streams asynchronously; under WSGI it holds a worker
thread for as long as the client listens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from ._options import SSE_HEADERS, FiltersFor, stream_options
from .stream import ActivityStream, aiter_sse, iter_sse, open_from_request

__all__ = ["sse_view"]


class _AsyncContent:
    """Async SSE content that Django closes with the response.

    Django registers ``close`` of streaming content as a resource closer; an
    async generator only has ``aclose``, so the stream would stay open until
    garbage collection.
    """

    def __init__(self, stream: ActivityStream, heartbeat: float) -> None:
        self._stream = stream
        self._messages = aiter_sse(stream, heartbeat=heartbeat)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages

    def close(self) -> None:
        self._stream.close()


def sse_view(
    *, filters: FiltersFor | None = None, heartbeat: float = 15.0, **options: Any
) -> Callable[[HttpRequest], StreamingHttpResponse]:
    """A view streaming activities as Server-Sent Events.

    ``filters(request)`` returns the stream filters for a request; ``options``
    are :func:`~mongoengine_activity.realtime.create_activity_stream`
    arguments. Honours ``Last-Event-ID`` (or ``?last_event_id=``).
    """

    def view(request: HttpRequest) -> StreamingHttpResponse:
        last_event_id = request.headers.get("Last-Event-ID") or request.GET.get(
            "last_event_id"
        )
        chosen = stream_options(options, filters, request)
        stream = open_from_request(last_event_id, chosen)
        content: Any = (
            _AsyncContent(stream, heartbeat)
            if isinstance(request, ASGIRequest)
            else iter_sse(stream, heartbeat=heartbeat)
        )
        response = StreamingHttpResponse(content, content_type="text/event-stream")
        for name, value in SSE_HEADERS.items():
            response[name] = value
        return response

    return view
