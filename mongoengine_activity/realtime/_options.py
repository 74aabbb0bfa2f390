"""What the framework endpoints share: headers and per-request filters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SSE_HEADERS", "FiltersFor", "stream_options"]

# Tell proxies not to buffer or cache the stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

FiltersFor = Callable[[Any], Mapping[str, Any]]


def stream_options(
    defaults: Mapping[str, Any], filters: FiltersFor | None, request: Any
) -> dict[str, Any]:
    """The endpoint's stream options with the filters chosen for ``request``.

    Filters come from the server-side ``filters(request)`` callable only, never
    from the query string, so a client cannot widen its own feed.
    """
    options = dict(defaults)
    if filters is not None:
        options.update(filters(request))

    return options
