"""mongoengine-activity: an activity log and audit trail for MongoEngine.

Subclass :class:`TrackedDocument` and every create, update and delete writes an
:class:`Activity` saying who did what to which document, with exact
before/after values.
"""

from __future__ import annotations

from .bulk import BulkResult
from .changestreams import ChangeStreamTracker
from .compliance import ForgetResult, forget_user
from .context import (
    ContextSnapshot,
    activity_context,
    capture_context,
    current_context,
    deferred,
    run_with_context,
    tracking_disabled,
)
from .errors import (
    ActivityError,
    ActivityWriteError,
    ConfigurationError,
    CursorError,
    QueryError,
    TenantRequiredError,
    TrackingError,
    ValidationError,
)
from .export import export_user_data
from .history import History
from .integrity import ChainProblem, ChainReport, IntegrityResult
from .lifecycle import ArchiveResult
from .limits import MemoryLimiter, MongoLimiter, use_limiter
from .models import Activity, ActivityEntity, ActivityQuerySet, ensure_tenant_indexes
from .options import (
    ActivityOptions,
    Settings,
    configure,
    current_settings,
)
from .pages import Page
from .realtime.stream import ActivityStream, create_activity_stream
from .signals import (
    activity_dropped,
    activity_failed,
    activity_logged,
    before_log,
)
from .templates import Rendered
from .tenancy import ALL_TENANTS
from .tracking import TrackedDocument, TrackedDynamicDocument, TrackedQuerySet
from .write_behind import disable_write_behind, enable_write_behind
from .writer import log_activity

__version__ = "0.1.0"

__all__ = [
    "ALL_TENANTS",
    "Activity",
    "ActivityEntity",
    "ActivityError",
    "ActivityOptions",
    "ActivityQuerySet",
    "ActivityStream",
    "ActivityWriteError",
    "ArchiveResult",
    "BulkResult",
    "ChainProblem",
    "ChainReport",
    "ChangeStreamTracker",
    "ConfigurationError",
    "ContextSnapshot",
    "CursorError",
    "ForgetResult",
    "History",
    "IntegrityResult",
    "MemoryLimiter",
    "MongoLimiter",
    "Page",
    "QueryError",
    "Rendered",
    "Settings",
    "TenantRequiredError",
    "TrackedDocument",
    "TrackedDynamicDocument",
    "TrackedQuerySet",
    "TrackingError",
    "ValidationError",
    "activity_context",
    "activity_dropped",
    "activity_failed",
    "activity_logged",
    "before_log",
    "capture_context",
    "configure",
    "create_activity_stream",
    "current_context",
    "current_settings",
    "deferred",
    "disable_write_behind",
    "enable_write_behind",
    "ensure_tenant_indexes",
    "export_user_data",
    "forget_user",
    "log_activity",
    "run_with_context",
    "tracking_disabled",
    "use_limiter",
]
