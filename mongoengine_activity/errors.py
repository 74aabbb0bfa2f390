"""The exceptions raised by mongoengine-activity.

Every error derives from :class:`ActivityError`, so one ``except`` clause catches
all of them. Each message names the class, option or field at fault.
"""

from __future__ import annotations

__all__ = [
    "ActivityError",
    "ActivityWriteError",
    "ConfigurationError",
    "CursorError",
    "QueryError",
    "TenantRequiredError",
    "TrackingError",
    "ValidationError",
]


class ActivityError(Exception):
    """Root of every error raised by mongoengine-activity."""


class ConfigurationError(ActivityError):
    """A setting in ``meta["activity"]`` or ``configure()`` is wrong."""


class ValidationError(ActivityError, ValueError):
    """An activity's input is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TenantRequiredError(ActivityError):
    """Multi-tenancy is on and a read or a write has no valid tenant.

    ``field`` names the tenant field. An empty, ``None`` or zero tenant never
    means "all tenants": reading every tenant takes an explicit
    ``Activity.objects.all_tenants()`` or ``activity_context(tenant=ALL_TENANTS)``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TrackingError(ActivityError):
    """A model cannot be tracked as declared."""


class ActivityWriteError(ActivityError):
    """An activity could not be written; raised only with ``on_error="raise"``."""


class QueryError(ActivityError, ValueError):
    """A read helper (feed, search, page, stats) got an argument it cannot use;
    ``argument`` names it."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class CursorError(QueryError):
    """A page cursor is garbage, was tampered with or signed with another key."""
