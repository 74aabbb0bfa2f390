"""Web framework integrations: middleware that fills the activity context.

Each framework has its own module, imported on its own so that only the
framework in use needs to be installed:

- :mod:`.wsgi` and :mod:`.asgi`: plain middleware for any WSGI or ASGI app;
- :mod:`.flask`: the ``ActivityContext`` extension (``init_app``);
- :mod:`.django`: ``ActivityContextMiddleware`` for ``MIDDLEWARE``;
- :mod:`.starlette`: middleware for Starlette and FastAPI;
- :mod:`.otel`: the OpenTelemetry trace id of the active span.

Request parsing shared by all of them (request id, trusted proxies, client IP,
user agent) lives in :mod:`._request`.
"""
