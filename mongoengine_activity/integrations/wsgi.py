"""WSGI middleware that fills the activity context for each request.

.. code-block:: python

    app = ActivityContextMiddleware(app, trusted_proxies=["10.0.0.0/8"])
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..context import activity_context
from . import otel
from ._request import RequestReader

__all__ = ["ActivityContextMiddleware", "ContextIterable"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ContextIterable:
    """The response body, iterated and closed inside the request's context."""

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


class ActivityContextMiddleware:
    """Wrap a WSGI app so activities written during a request carry its context.

    Sets ``request_id`` (from ``X-Request-ID`` when safe, else generated),
    ``ip`` (the peer, or the client reported by ``X-Forwarded-For`` when the
    peer is one of ``trusted_proxies``), ``user_agent``, the ``user_id``
    returned by ``user_getter(environ)`` (asked each time an activity is
    written, so a login during the request counts) and, with OpenTelemetry
    installed and ``trace_ids`` true, the active span's ``trace_id``.

    The response body is produced inside the same context, so streamed
    responses are covered; the server's own context is never changed.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        user_getter: Callable[[Mapping[str, Any]], Any] | None = None,
        request_id_header: str = "X-Request-ID",
        trace_ids: bool = True,
        reader: RequestReader | None = None,
    ) -> None:
        self.app = app
        self.reader = reader or RequestReader(
            trusted_proxies=trusted_proxies, request_id_header=request_id_header
        )
        self.user_getter = user_getter
        self.trace_ids = trace_ids and otel.available()

    def context_values(self, environ: dict[str, Any]) -> dict[str, Any]:
        """The ``activity_context`` keywords for one request."""
        getter = self.user_getter
        return self.reader.read_wsgi(environ).context_values(
            user=None if getter is None else (lambda: getter(environ)),
            trace_id=otel.current_trace_id if self.trace_ids else None,
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        context = contextvars.copy_context()
        values = self.context_values(environ)
        body = context.run(self._start, values, environ, start_response)

        return ContextIterable(body, context)

    def _start(
        self,
        values: dict[str, Any],
        environ: dict[str, Any],
        start_response: Callable[..., Any],
    ) -> Iterable[bytes]:
        # Entered and never exited: the copied context is dropped after the
        # response, so nothing is left to restore.
        activity_context(**values).__enter__()
        return self.app(environ, start_response)
