"""Multi-tenancy: which tenant an activity belongs to, on writes and on reads.

Multi-tenancy is turned on for every model with
``configure(multi_tenant=True, tenant_field=...)`` or for one model with
``meta["activity"]``. The activity collection is shared, so the read side has
one policy for the whole collection (:func:`tenant_policy`): on as soon as any
model or ``configure()`` turns it on, strict if any of them asks for strict.

- A write takes its tenant from the document (its field named like
  ``tenant_field``, or ``tenant_document_field``), else from
  ``activity_context(tenant=...)``; with neither it raises
  :class:`~mongoengine_activity.errors.TenantRequiredError` and stores nothing.
- A read is scoped to the tenant in context (or bound with
  ``Activity.objects.for_tenant(...)``). Under ``"strict"`` a read without one
  raises; under ``"soft"`` a read with no ``tenant`` key in context sees every
  tenant. Under both, ``None``, ``""`` and ``0`` are refused: they never mean
  "all tenants". Reading all tenants takes :data:`ALL_TENANTS`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bson import DBRef, ObjectId

from ._bson import normalize
from .context import context_value
from .errors import ConfigurationError, TenantRequiredError, ValidationError
from .options import ActivityOptions, resolve_options, settings_version

__all__ = [
    "ALL_TENANTS",
    "TenantPolicy",
    "document_tenant",
    "in_scope",
    "read_tenant_filter",
    "tenant_policy",
    "write_tenant",
]

logger = logging.getLogger("mongoengine_activity")

# The options a model's meta may set that make it take part in the policy.
TENANT_OPTIONS = frozenset(
    {"multi_tenant", "tenant_field", "tenant_isolation", "tenant_document_field"}
)


class _AllTenants:
    """The type of :data:`ALL_TENANTS`; there is only one."""

    _instance: _AllTenants | None = None

    def __new__(cls) -> _AllTenants:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ALL_TENANTS"

    def __reduce__(self) -> str:
        return "ALL_TENANTS"


ALL_TENANTS: Final = _AllTenants()
"""Reads every tenant's activities: ``activity_context(tenant=ALL_TENANTS)``.

For admin jobs only; a QuerySet that reads with it logs one WARNING. It is
refused on writes, which always need one tenant."""

_ABSENT: Any = object()

_HOW_TO = (
    "run it inside activity_context(tenant=...), bind one with "
    "Activity.objects.for_tenant(...), or read every tenant on purpose with "
    "Activity.objects.all_tenants()"
)


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """How the activity collection is split between tenants."""

    field: str
    isolation: Literal["strict", "soft"]
    sources: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"multi-tenancy is on ({self.isolation} isolation, tenant field "
            f"{self.field!r}, set by {', '.join(self.sources)})"
        )


_lock = threading.Lock()
_models: dict[type[Any], None] = {}
_generation = 0
_cached: tuple[tuple[int, int], TenantPolicy | None] | None = None


def declare_tenant_model(cls: type[Any]) -> None:
    """Make a tracked class whose meta sets tenant options part of the policy.

    Raises :class:`ConfigurationError` (and forgets the class) when the class
    names another tenant field than the policy already in force.
    """
    global _generation
    name = cls.activity_options().tenant_document_field
    if (
        name is not None
        and not getattr(cls, "_dynamic", False)
        and not any(
            key == name or field.db_field == name for key, field in cls._fields.items()
        )
    ):
        raise ConfigurationError(
            f"{cls.__name__}.meta['activity']: option 'tenant_document_field': "
            f"{name!r} is not a field of {cls.__name__}"
        )
    with _lock:
        _models[cls] = None
        _generation += 1
    try:
        tenant_policy()
    except ConfigurationError:
        forget_tenant_model(cls)
        raise


def forget_tenant_model(cls: type[Any]) -> None:
    """Take a class out of the policy again (for tests that define models)."""
    global _generation
    with _lock:
        if _models.pop(cls, _models) is not _models:
            _generation += 1


def tenant_policy() -> TenantPolicy | None:
    """The collection-wide tenancy policy, or ``None`` when tenancy is off."""
    global _cached
    key = (settings_version(), _generation)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]

    sources: list[tuple[str, ActivityOptions]] = []
    defaults = resolve_options({}, "configure()")
    if defaults.multi_tenant:
        sources.append(("configure()", defaults))
    for cls in list(_models):
        options: ActivityOptions = cls.activity_options()
        if options.multi_tenant:
            sources.append((cls.__name__, options))

    policy = _combine(sources)
    _cached = (key, policy)
    return policy


def _combine(sources: list[tuple[str, ActivityOptions]]) -> TenantPolicy | None:
    if not sources:
        return None

    fields = {options.tenant_field for _, options in sources}
    if len(fields) > 1:
        named = ", ".join(
            f"{where} uses {options.tenant_field!r}" for where, options in sources
        )
        raise ConfigurationError(
            "multi-tenancy: all models share one activity collection, so they "
            f"need one tenant_field; {named}"
        )
    strict = any(options.tenant_isolation == "strict" for _, options in sources)
    return TenantPolicy(
        field=fields.pop(),
        isolation="strict" if strict else "soft",
        sources=tuple(where for where, _ in sources),
    )


# --- checking one tenant value


def _is_empty(value: Any) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return value == 0

    return False


def check_tenant(value: Any, *, field: str, where: str) -> Any:
    """Return ``value`` if it is a usable tenant, else raise naming ``field``.

    A tenant is a non-empty string, a non-zero integer, an ObjectId or a UUID.
    ``None``, ``""`` and ``0`` raise :class:`TenantRequiredError`; other types
    raise :class:`ValidationError`.
    """
    if value is ALL_TENANTS:
        raise TenantRequiredError(
            f"{where}: ALL_TENANTS selects every tenant for reading; an activity "
            f"is written for one tenant (field {field!r})",
            field=field,
        )
    if _is_empty(value):
        raise TenantRequiredError(
            f"{where} needs a tenant (field {field!r}), got {value!r}; an empty, "
            "None or zero tenant never means all tenants",
            field=field,
        )
    if isinstance(value, bool) or not isinstance(
        value, str | int | ObjectId | uuid.UUID
    ):
        raise ValidationError(
            f"{where}: a tenant (field {field!r}) is a string, an integer, an "
            f"ObjectId or a UUID, not {type(value).__name__}",
            field=field,
        )

    return value


# --- reads


def read_tenant_filter(bound: Any = None, *, quiet: bool = False) -> dict[str, Any]:
    """The filter that scopes a read to its tenant; ``{}`` when none applies.

    ``bound`` is a tenant bound on the QuerySet (or :data:`ALL_TENANTS`); when
    ``None``, the tenant comes from the current context. A read of every
    tenant is logged at WARNING unless ``quiet``. Raises
    :class:`TenantRequiredError` under strict isolation without a tenant, and
    under any isolation for an empty, ``None`` or zero tenant, and
    :class:`ConfigurationError` for a bound tenant while multi-tenancy is off
    (it would silently read every tenant).
    """
    policy = tenant_policy()
    if policy is None:
        if bound is not None and bound is not ALL_TENANTS:
            raise ConfigurationError(
                "Activity.objects.for_tenant(): multi-tenancy is off, so no "
                "query is scoped to a tenant; turn it on with "
                "configure(multi_tenant=True, tenant_field=...)"
            )
        return {}

    if bound is not None:
        value = bound
    else:
        value = context_value("tenant", _ABSENT)
        if value is _ABSENT:
            if policy.isolation == "soft":
                return {}
            raise TenantRequiredError(
                f"reading activities needs a tenant: {policy.describe()}; {_HOW_TO}",
                field=policy.field,
            )
    if value is ALL_TENANTS:
        if not quiet:
            logger.warning("activities read across all tenants (ALL_TENANTS)")
        return {}

    tenant = check_tenant(value, field=policy.field, where="reading activities")
    return {policy.field: normalize(tenant)}


def scope_query(
    query: Mapping[str, Any], bound: Any = None, *, quiet: bool = False
) -> dict[str, Any]:
    """``query`` narrowed to the tenant in force; it can never be widened."""
    scope = read_tenant_filter(bound, quiet=quiet)
    if not scope:
        return dict(query)

    (field,) = scope
    if field in query:
        return {"$and": [scope, dict(query)]}

    return {**scope, **query}


def in_scope(activity: Any, bound: Any = None) -> bool:
    """Whether ``activity`` (an ``Activity`` or its stored dict) may be shown
    to the reader in force: for streams and receivers that forward activities
    outside a query. Raises like a read without a tenant would."""
    scope = read_tenant_filter(bound, quiet=True)
    if not scope:
        return True

    ((field, tenant),) = scope.items()
    stored = activity if isinstance(activity, Mapping) else activity._data
    return bool(normalize(stored.get(field)) == tenant)


# --- writes


def document_tenant(
    sender: type[Any],
    values: Mapping[str, Any],
    options: ActivityOptions,
    *,
    stored: bool = True,
) -> Any:
    """The tenant a tracked document holds, or ``None`` if it holds none.

    The field is ``tenant_document_field`` if set, else the document's field
    whose attribute or stored name is ``tenant_field`` (or an undeclared field
    of that name, for a dynamic document). ``values`` are stored
    values by stored name, or (``stored=False``) the document's ``_data``.
    """
    name = options.tenant_document_field or options.tenant_field
    fields: Mapping[str, Any] = sender._fields
    attribute = name if name in fields else None
    if attribute is None:
        attribute = next(
            (key for key, item in fields.items() if item.db_field == name), None
        )
    if attribute is None:
        # A dynamic document's undeclared field is stored under its own name.
        value = values.get(name)
    else:
        value = values.get(fields[attribute].db_field if stored else attribute)
    if isinstance(value, Mapping) and isinstance(value.get("_ref"), DBRef):
        # A GenericReferenceField is stored as {"_cls": ..., "_ref": DBRef}.
        value = value["_ref"]
    if isinstance(value, DBRef):
        return value.id

    return getattr(value, "pk", value)


def _stored_name(sender: type[Any], options: ActivityOptions) -> str | None:
    """Where ``sender`` stores its tenant; ``None`` if it holds none."""
    name = options.tenant_document_field or options.tenant_field
    field = sender._fields.get(name)
    if field is not None:
        return str(field.db_field)
    if getattr(sender, "_dynamic", False) or any(
        item.db_field == name for item in sender._fields.values()
    ):
        return name

    return None


def tenant_not_loaded(
    sender: type[Any], document: Any, options: ActivityOptions
) -> Any:
    """The stored tenant of a loaded ``document`` whose tenant field was not
    loaded (``only()``/``exclude()``), read from the collection; ``None`` if
    the stored document has none. The document (and its before-image) gain
    the value, so the save's or delete's activity is filed under the
    document's own tenant, not the context's."""
    image = document.__dict__.get("_activity_image")
    if image is None or document.pk is None:
        return None
    name = _stored_name(sender, options)
    if name is None or name in image:
        return None
    found = sender._get_collection().find_one({"_id": document.pk}, {name: 1})
    if not found or found.get(name) is None:
        return None

    object.__setattr__(document, "_activity_image", {**image, name: found[name]})
    # Also in the values a save writes its activity from; the field is not
    # marked changed, so the save does not write it back.
    attribute = next(
        (key for key, item in sender._fields.items() if item.db_field == name), None
    )
    if attribute is not None:
        document._data[attribute] = found[name]
    return document_tenant(sender, found, options)


def write_tenant(
    options: ActivityOptions | None,
    document_value: Any,
    context_value: Any,
    *,
    where: str,
    warn: bool = True,
) -> tuple[str, Any] | None:
    """The ``(field, stored value)`` an activity is written with, if any.

    ``options`` are the tracked model's (``None`` for a manual log, which then
    follows :func:`tenant_policy`). The document's tenant wins over the
    context's. Raises :class:`TenantRequiredError` when multi-tenancy is on and
    neither gives a usable tenant. A document tenant that differs from the
    context's is logged at WARNING unless ``warn`` is false.
    """
    if options is not None:
        field = options.tenant_field if options.multi_tenant else None
    else:
        policy = tenant_policy()
        field = policy.field if policy is not None else None
    if field is None:
        return None

    if document_value is not None:
        tenant = check_tenant(document_value, field=field, where=where)
        if (
            warn
            and context_value not in (None, ALL_TENANTS)
            and normalize(context_value) != normalize(tenant)
        ):
            logger.warning(
                "%s: the document's tenant differs from the context's; the "
                "activity is written for the document's tenant",
                where,
            )
    else:
        tenant = check_tenant(context_value, field=field, where=where)

    return field, normalize(tenant)
