"""The OpenTelemetry trace id of the span active when an activity is written.

Needs the ``otel`` extra (``opentelemetry-api``). Without it,
:func:`current_trace_id` returns ``None`` and :func:`available` is ``False``.
"""

from __future__ import annotations

__all__ = ["available", "current_trace_id"]

try:
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised only without the extra
    _trace = None  # type: ignore[assignment]


def available() -> bool:
    """True when ``opentelemetry-api`` is installed."""
    return _trace is not None


def current_trace_id() -> str | None:
    """The active span's trace id as 32 hex digits, or ``None`` without a span."""
    if _trace is None:
        return None
    context = _trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None

    return _trace.format_trace_id(context.trace_id)
