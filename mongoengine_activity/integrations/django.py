"""Django: ``ActivityContextMiddleware`` for the ``MIDDLEWARE`` setting.

.. code-block:: python

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "mongoengine_activity.integrations.django.ActivityContextMiddleware",
    ]
    MONGOENGINE_ACTIVITY = {
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
        "USER_GETTER": "myproject.activity.current_user",  # or a callable
        "REQUEST_ID_HEADER": "X-Request-ID",
        "TRACE_IDS": True,
    }

Needs the ``django`` extra.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from ..context import activity_context
from ..errors import ConfigurationError
from . import otel
from ._request import RequestReader

__all__ = ["ActivityContextMiddleware", "authenticated_user_pk"]

SETTING = "MONGOENGINE_ACTIVITY"
_KNOWN = {"TRUSTED_PROXIES", "USER_GETTER", "REQUEST_ID_HEADER", "TRACE_IDS"}


class _InContext:
    """A streamed body whose chunks are produced inside the request's context."""

    def __init__(self, body: Iterable[bytes], values: dict[str, Any]) -> None:
        self._iterator = iter(body)
        self._values = values

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        with activity_context(**self._values):
            return next(self._iterator)


def authenticated_user_pk(request: HttpRequest) -> Any:
    """The default user getter: ``request.user.pk`` when someone is logged in.

    Needs ``AuthenticationMiddleware``; without it (no ``request.user``) the
    user is ``None``.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None

    return user.pk


class ActivityContextMiddleware:
    """Every request runs inside an ``activity_context``; sync and async.

    Reads the ``MONGOENGINE_ACTIVITY`` setting (a dict; unknown keys raise
    :class:`~mongoengine_activity.errors.ConfigurationError`): trusted proxies
    (addresses or CIDR ranges), the user getter (a callable or its dotted path,
    given the request; default :func:`authenticated_user_pk`), the request id
    header and whether to record OpenTelemetry trace ids. The user is asked
    each time an activity is written, so the middleware may sit before or
    after ``AuthenticationMiddleware``. A streamed response's body is produced
    inside the request's context under WSGI; under ASGI, an async streamed
    body is not (see the limitations).
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        config = dict(getattr(settings, SETTING, {}) or {})
        unknown = set(config) - _KNOWN
        if unknown:
            raise ConfigurationError(
                f"settings.{SETTING}: unknown key {sorted(unknown)[0]!r}; "
                f"known keys are {', '.join(sorted(_KNOWN))}"
            )
        getter = config.get("USER_GETTER", authenticated_user_pk)
        if isinstance(getter, str):
            getter = import_string(getter)
        self.user_getter: Callable[[HttpRequest], Any] | None = getter
        self.reader = RequestReader(
            trusted_proxies=config.get("TRUSTED_PROXIES", ()),
            request_id_header=config.get("REQUEST_ID_HEADER", "X-Request-ID"),
        )
        self.trace_ids = bool(config.get("TRACE_IDS", True)) and otel.available()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def context_values(self, request: HttpRequest) -> dict[str, Any]:
        """The ``activity_context`` keywords for one request."""
        getter = self.user_getter
        return self.reader.read_wsgi(request.META).context_values(
            user=None if getter is None else (lambda: getter(request)),
            trace_id=otel.current_trace_id if self.trace_ids else None,
        )

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)

        values = self.context_values(request)
        with activity_context(**values):
            response: Any = self.get_response(request)
        if getattr(response, "streaming", False) and not getattr(
            response, "is_async", False
        ):
            # Django iterates a streamed body after we return.
            response.streaming_content = _InContext(response.streaming_content, values)

        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        with activity_context(**self.context_values(request)):
            response = self.get_response(request)
            return await response
