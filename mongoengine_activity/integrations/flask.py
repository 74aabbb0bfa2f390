"""Flask: the ``ActivityContext`` extension.

.. code-block:: python

    activity = ActivityContext(trusted_proxies=["10.0.0.0/8"],
                               user_getter=lambda request: session.get("user"))
    activity.init_app(app)

Needs the ``flask`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flask

from . import wsgi
from ._request import RequestReader

__all__ = ["ActivityContext"]

EXTENSION_KEY = "mongoengine_activity"


class ActivityContext:
    """Flask extension: every request runs inside an ``activity_context``.

    ``init_app`` wraps ``app.wsgi_app`` with the WSGI middleware, so the
    context covers ``before_request`` hooks, the view, error handlers and
    streamed responses, and is gone once the response is sent. ``user_getter``
    receives :data:`flask.request` and is asked each time an activity is
    written inside the request (``flask.g`` and ``flask.session`` are usable
    there). Read the request id inside a request with
    ``current_context()["requestId"]``.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        trusted_proxies: Iterable[str] = (),
        user_getter: Callable[[flask.Request], Any] | None = None,
        request_id_header: str = "X-Request-ID",
        trace_ids: bool = True,
    ) -> None:
        self.reader = RequestReader(
            trusted_proxies=trusted_proxies, request_id_header=request_id_header
        )
        self.user_getter = user_getter
        self.trace_ids = trace_ids
        if app is not None:
            self.init_app(app)

    def _user(self, environ: Mapping[str, Any]) -> Any:
        assert self.user_getter is not None
        if not flask.has_request_context():
            return None

        return self.user_getter(flask.request)

    def init_app(self, app: flask.Flask) -> None:
        """Install the context on ``app`` (once; a second call is refused)."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"ActivityContext is already installed on the Flask app {app.name!r}"
            )
        app.wsgi_app = wsgi.ActivityContextMiddleware(  # type: ignore[method-assign]
            app.wsgi_app,
            user_getter=None if self.user_getter is None else self._user,
            trace_ids=self.trace_ids,
            reader=self.reader,
        )
        app.extensions[EXTENSION_KEY] = self
