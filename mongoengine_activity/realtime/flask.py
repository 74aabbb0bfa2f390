"""A Server-Sent Events view for Flask.

.. code-block:: text

    app.add_url_rule("/activities/stream", view_func=sse_view(
        filters=lambda request: {"user_id": current_user.id}))

Each response holds a worker thread for as long as the client listens: run
Flask under a threaded or gevent server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask

from ._options import SSE_HEADERS, FiltersFor, stream_options
from .stream import iter_sse, open_from_request

__all__ = ["sse_response", "sse_view"]


def sse_response(*, heartbeat: float = 15.0, **options: Any) -> flask.Response:
    """Stream activities for the current request as Server-Sent Events.

    Honours the ``Last-Event-ID`` header (or ``?last_event_id=``); ``options``
    are :func:`~mongoengine_activity.realtime.create_activity_stream` arguments.
    """
    request = flask.request
    last_event_id = request.headers.get("Last-Event-ID") or request.args.get(
        "last_event_id"
    )
    stream = open_from_request(last_event_id, options)
    return flask.Response(
        iter_sse(stream, heartbeat=heartbeat),
        mimetype="text/event-stream",
        headers=SSE_HEADERS,
    )


def sse_view(
    *, filters: FiltersFor | None = None, heartbeat: float = 15.0, **options: Any
) -> Callable[[], flask.Response]:
    """A view function for ``app.add_url_rule``; ``filters(request)`` scopes it."""

    def view() -> flask.Response:
        chosen = stream_options(options, filters, flask.request)
        return sse_response(heartbeat=heartbeat, **chosen)

    view.__name__ = "activity_stream"
    return view
