"""Starlette and FastAPI: middleware that fills the activity context.

.. code-block:: python

    app.add_middleware(
        ActivityContextMiddleware,
        trusted_proxies=["10.0.0.0/8"],
        user_getter=lambda request: request.user.identity,
    )

Needs the ``fastapi`` extra (or Starlette alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import HTTPConnection

from . import asgi
from ._request import RequestReader

__all__ = ["ActivityContextMiddleware"]


class ActivityContextMiddleware(asgi.ActivityContextMiddleware):
    """The ASGI middleware, with ``user_getter`` given Starlette's connection.

    ``user_getter(connection)`` receives an
    :class:`~starlette.requests.HTTPConnection` (the base of ``Request`` and
    ``WebSocket``) and is asked each time an activity is written, so a user set
    by ``AuthenticationMiddleware`` or by a dependency (on
    ``request.state``) counts wherever the middleware sits. Sync endpoints run
    in Starlette's thread pool, which carries the context along.
    """

    def __init__(
        self,
        app: asgi.ASGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        user_getter: Callable[[HTTPConnection], Any] | None = None,
        request_id_header: str = "X-Request-ID",
        trace_ids: bool = True,
        reader: RequestReader | None = None,
    ) -> None:
        super().__init__(
            app,
            trusted_proxies=trusted_proxies,
            request_id_header=request_id_header,
            trace_ids=trace_ids,
            reader=reader,
        )
        self.connection_user_getter = user_getter

    def user_for(self, scope: asgi.Scope) -> Callable[[], Any] | None:
        getter = self.connection_user_getter
        if getter is None:
            return None

        return lambda: getter(HTTPConnection(scope))
