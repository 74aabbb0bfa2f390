"""ASGI middleware that fills the activity context for each request.

.. code-block:: python

    app = ActivityContextMiddleware(app, trusted_proxies=["10.0.0.0/8"])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from ..context import activity_context
from . import otel
from ._request import RequestReader

__all__ = ["ActivityContextMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ActivityContextMiddleware:
    """Wrap an ASGI app so activities written during a request carry its context.

    Covers ``http`` and ``websocket`` scopes (``lifespan`` passes through). Sets
    ``request_id`` (from ``X-Request-ID`` when safe, else generated), ``ip``
    (the peer, or the client reported by ``X-Forwarded-For`` when the peer is
    one of ``trusted_proxies``), ``user_agent``, the ``user_id`` returned by
    ``user_getter(scope)`` (asked each time an activity is written, so a user
    set by authentication inside the app counts) and, with OpenTelemetry
    installed and ``trace_ids`` true, the active span's ``trace_id``. The
    context is reset when the app returns or raises; tasks the app starts
    inherit a copy.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        user_getter: Callable[[Scope], Any] | None = None,
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

    def user_for(self, scope: Scope) -> Callable[[], Any] | None:
        """The deferred user of one request (``None`` without a getter)."""
        getter = self.user_getter
        if getter is None:
            return None

        return lambda: getter(scope)

    def context_values(self, scope: Scope) -> dict[str, Any]:
        """The ``activity_context`` keywords for one request."""
        return self.reader.read_asgi(scope).context_values(
            user=self.user_for(scope),
            trace_id=otel.current_trace_id if self.trace_ids else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        with activity_context(**self.context_values(scope)):
            await self.app(scope, receive, send)
