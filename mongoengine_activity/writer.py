"""The one write path every activity takes, manual or automatic.

1. fill from the current context (user, request, tenant, team);
2. validate manual input (pydantic), naming the field at fault;
3. mask configured paths and cap oversized values;
4. send ``before_log`` (receivers may modify or cancel);
5. honour ``event_id`` idempotency through the unique index;
6. drop what a dedup window or rate limit refuses (:mod:`.limits`);
7. sign (when signing is on for the model) and insert (or queue, in
   write-behind mode), then trim to ``max_per_entity``;
8. send ``activity_logged``.

A failure in steps 3 to 8 is logged on the ``mongoengine_activity`` logger and
sent on ``activity_failed``; with ``on_error="raise"`` it is raised as
:class:`~mongoengine_activity.errors.ActivityWriteError`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import bson
import pydantic
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from . import signals, write_behind
from ._bson import digest, normalize, now_ms, truncate_ms, value_size
from .context import FIELD_KEYS, current_context
from .diff import Change
from .errors import ActivityWriteError, ConfigurationError, ValidationError
from .lifecycle import trim_entity
from .limits import check_limits
from .masking import PathMatcher, mask_changes, mask_value
from .models import Activity
from .options import ActivityOptions, Settings, current_settings
from .signing import sealed, signing_wanted
from .tenancy import document_tenant, tenant_policy, write_tenant

__all__ = [
    "Admitted",
    "WriteRequest",
    "admit",
    "log_activity",
    "prepare_request",
    "write_activity",
]

logger = logging.getLogger("mongoengine_activity")

_UNSET: Any = object()
# Clocks drift; a created_at further in the future than this is refused.
_MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """An activity on its way to the database, before masking and signals."""

    son: dict[str, Any]
    sender: Any
    options: ActivityOptions | None
    on_error: Literal["log", "raise"]


def _context_parts(
    values: dict[str, Any], explicit_context: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split resolved context ``values`` into activity fields and ``context``
    keys; ``values`` is consumed."""
    fields = {key: values.pop(key) for key in FIELD_KEYS if key in values}
    if explicit_context:
        values.update(explicit_context)

    return fields, {key: value for key, value in values.items() if value is not None}


def build_son(
    *,
    type: str,
    entity_type: str,
    entity_id: Any,
    user_id: Any = _UNSET,
    team_id: Any = _UNSET,
    data: Mapping[str, Any] | None = None,
    changes: list[Change] | None = None,
    context: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
    event_id: str | None = None,
    options: ActivityOptions | None = None,
    context_values: Mapping[str, Any] | None = None,
    tenant: Any = None,
    fallback_user_id: Any = None,
) -> dict[str, Any]:
    """Assemble an activity's stored document, filling gaps from the context.

    ``context_values`` is :func:`current_context` taken by the caller, so a
    deferred value is computed once per activity. ``fallback_user_id`` is the
    user when neither the caller nor the context names one. ``tenant`` is the tenant the
    document holds, if any; it wins over the context's. With multi-tenancy on
    and no tenant at all this raises
    :class:`~mongoengine_activity.errors.TenantRequiredError`.
    """
    values = current_context() if context_values is None else dict(context_values)
    from_context, stored_context = _context_parts(values, context)
    tenant_stamp = write_tenant(
        options,
        tenant,
        from_context.get("tenant"),
        where=f"activity {type!r} for {entity_type}",
    )
    if user_id is _UNSET:
        user_id = from_context.get("user_id")
        if user_id is None:
            user_id = fallback_user_id
    if team_id is _UNSET:
        team_id = from_context.get("team_id")

    created = now_ms() if created_at is None else truncate_ms(created_at)
    son: dict[str, Any] = {
        "userId": normalize(user_id),
        "entity": {"type": entity_type, "id": normalize(entity_id)},
        "type": type,
        "meta": normalize(dict(data)) if data else {},
        "createdAt": created,
        "changes": changes or [],
        "context": normalize(stored_context),
    }
    if team_id is not None:
        son["teamId"] = normalize(team_id)
    if event_id is not None:
        son["eventId"] = event_id
    if options is not None and options.ttl is not None:
        son["expiresAt"] = created + options.ttl
    if tenant_stamp is not None:
        son[tenant_stamp[0]] = tenant_stamp[1]

    return son


def _truncation_marker(value: Any, size: int) -> dict[str, Any]:
    return {"_truncated": True, "size": size, "sha256": digest(value)}


def _within_caps(son: dict[str, Any], settings: Settings) -> bool:
    """A cheap, safe bound for the common case: encoded together, the values
    are far enough below both caps that sizing them one by one cannot find any
    to replace (each ``value_size`` is at most its encoded bytes + 16)."""
    slots = 2 * len(son["changes"]) + len(son["meta"])
    try:
        encoded = len(bson.encode({"c": son["changes"], "m": son["meta"]}))
    except Exception:
        return False

    budget = min(settings.max_value_bytes, settings.max_activity_bytes)
    return encoded + 16 * slots <= budget


def _cap_sizes(son: dict[str, Any], settings: Settings) -> None:
    """Replace values over the size cap by a marker; keep the total in budget."""
    if not _within_caps(son, settings):
        _cap_each_value(son, settings)


def _cap_each_value(son: dict[str, Any], settings: Settings) -> None:
    limit = settings.max_value_bytes
    slots: list[tuple[int, dict[str, Any], str]] = []
    for change in son["changes"]:
        for side in ("from", "to"):
            slots.append((value_size(change[side]), change, side))
    data = son["meta"]
    for key in data:
        slots.append((value_size(data[key]), data, key))

    total = 0
    for size, holder, key in slots:
        if size > limit:
            holder[key] = _truncation_marker(holder[key], size)
        else:
            total += size
    if total <= settings.max_activity_bytes:
        return

    for size, holder, key in sorted(slots, key=lambda slot: slot[0], reverse=True):
        if total <= settings.max_activity_bytes:
            break
        if size <= limit:
            holder[key] = _truncation_marker(holder[key], size)
            total -= size


def _mask(
    son: dict[str, Any], options: ActivityOptions | None, settings: Settings
) -> None:
    class_paths = options.mask_fields if options is not None else ()
    class_pattern = options.mask_pattern if options is not None else "***"
    if class_paths:
        son["changes"] = mask_changes(
            son["changes"], PathMatcher(class_paths), class_pattern
        )
    if settings.mask_fields:
        matcher = PathMatcher(settings.mask_fields)
        pattern = settings.mask_pattern
        son["changes"] = mask_changes(son["changes"], matcher, pattern)
        shapes = matcher.remainders("")
        son["meta"] = mask_value(son["meta"], shapes, pattern)
        son["context"] = mask_value(son["context"], shapes, pattern)


def _activity_from(son: dict[str, Any]) -> Activity:
    activity: Activity = Activity._from_son(son)
    return activity


@dataclass(slots=True)
class Admitted:
    """What steps 3 to 6 made of a request: the son to insert, or why not."""

    son: dict[str, Any]
    activity: Activity | None = None
    stored: Activity | None = None
    outcome: Literal["write", "cancelled", "repeat", "dropped"] = "write"


def admit(request: WriteRequest, *, look_up_event_id: bool = True) -> Admitted:
    """Steps 3 to 6: mask, cap sizes, ``before_log``, idempotency, limits.

    Shared by :func:`write_activity` and bulk logging; exceptions propagate to
    the caller, which reports them.
    """
    son = request.son
    sender = request.sender
    settings = current_settings()
    _mask(son, request.options, settings)
    _cap_sizes(son, settings)

    activity: Activity | None = None
    if signals.has_receivers(signals.before_log, sender):
        activity = _activity_from(son)
        replies = signals.send(signals.before_log, sender, activity=activity)
        if any(reply is False for _, reply in replies):
            logger.debug("activity %s cancelled by a before_log receiver", son["type"])
            return Admitted(son, activity, outcome="cancelled")
        son = _keep_tenant(activity.to_mongo().to_dict(), request.son)

    if look_up_event_id and "eventId" in son:
        stored = Activity._get_collection().find_one(_same_event(son))
        if stored is not None:
            logger.debug("activity with a repeated event_id was not written again")
            return Admitted(son, activity, _activity_from(stored), "repeat")
    reason = check_limits(son, request.options)
    if reason is not None:
        report_drop(son, sender, reason)
        return Admitted(son, activity, outcome="dropped")

    return Admitted(son, activity)


@dataclass(slots=True)
class _Stored:
    """What the insert step produced: the document and whether it is new."""

    son: dict[str, Any]
    activity: Activity | None
    new: bool


def write_activity(
    request: WriteRequest, *, want_result: bool = True
) -> Activity | None:
    """Run ``request`` through masking, signals, idempotency, limits and insert.

    Returns the stored activity (or, for a repeated ``event_id``, the one stored
    first), or ``None`` when a receiver cancelled it, dedup or a rate limit
    dropped it, or the write failed and ``on_error`` is ``"log"``. In
    write-behind mode the activity is returned before it is stored. An
    ``activity_logged`` receiver that raises does not undo the write: the error
    is logged, and raised only with ``on_error="raise"``.
    """
    activity: Activity | None = None
    try:
        admitted = admit(request)
        activity = admitted.activity
        if admitted.outcome != "write":
            return admitted.stored
        if not must_sign(request):
            queued = write_behind.enqueue(request, admitted.son, activity)
            if queued is not None:
                return _activity_from(admitted.son) if queued and want_result else None
        stored = insert_one(request, admitted.son, activity)
    except Exception as error:
        report_failure(request, activity, error)
        return None
    if not stored.new:
        return stored.activity

    return after_insert(request, stored.son, stored.activity, want_result=want_result)


def after_insert(
    request: WriteRequest,
    son: dict[str, Any],
    activity: Activity | None,
    *,
    want_result: bool = True,
) -> Activity | None:
    """Steps 7 and 8 once ``son`` is stored: trim, then ``activity_logged``."""
    sender = request.sender
    if request.options is not None and request.options.max_per_entity:
        trim_entity(son["entity"], request.options.max_per_entity)
    if activity is None:
        if not (want_result or signals.has_receivers(signals.activity_logged, sender)):
            return None
        activity = _activity_from(son)
    else:
        activity.id = son["_id"]
    try:
        signals.send(signals.activity_logged, sender, activity=activity)
    except Exception:
        logger.exception("an activity_logged receiver raised")
        if request.on_error == "raise":
            raise
    return activity


def must_sign(request: WriteRequest) -> bool:
    """Whether ``request`` is signed: then it is inserted on its own, in
    order, because each signature chains to the one before."""
    return signing_wanted(request.options, current_settings())


def insert_one(
    request: WriteRequest, son: dict[str, Any], activity: Activity | None
) -> _Stored:
    """Step 7 for one activity: sign it if wanted and insert it."""
    settings = current_settings()
    collection = Activity._get_collection()
    try:
        with sealed(son, request.options, settings):
            son["_id"] = collection.insert_one(son).inserted_id
    except DuplicateKeyError:
        existing = collection.find_one(_same_event(son)) if "eventId" in son else None
        if existing is None:
            _explain_foreign_event(son)
            raise
        logger.debug("activity with a repeated event_id was not written again")
        return _Stored(existing, _activity_from(existing), new=False)

    logger.debug("activity %s logged for %s", son["type"], son["entity"]["type"])
    if activity is not None:
        activity.id = son["_id"]
    return _Stored(son, activity, new=True)


def report_drop(son: Mapping[str, Any], sender: Any, reason: str) -> None:
    """Log and signal an activity dropped by dedup, a rate limit or a full queue."""
    logger.warning(
        "activity %s for %s dropped: %s", son.get("type"), _entity_type(son), reason
    )
    try:
        signals.send(
            signals.activity_dropped,
            sender,
            activity=_activity_from(dict(son)),
            reason=reason,
        )
    except Exception:
        logger.exception("an activity_dropped receiver raised")


def _entity_type(son: Mapping[str, Any]) -> Any:
    entity = son.get("entity")
    return entity.get("type") if isinstance(entity, Mapping) else None


def _keep_tenant(son: dict[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """Put the tenant back as it was before ``before_log``: the model does not
    declare the tenant field, and no receiver may move an activity to another
    tenant or out of every tenant."""
    policy = tenant_policy()
    if policy is not None and policy.field in before:
        son[policy.field] = before[policy.field]

    return son


def _same_event(son: Mapping[str, Any]) -> dict[str, Any]:
    """The query for the activity stored first with ``son``'s event id."""
    query = {"eventId": son["eventId"]}
    policy = tenant_policy()
    if policy is not None and policy.field in son:
        query[policy.field] = son[policy.field]

    return query


def _explain_foreign_event(son: Mapping[str, Any]) -> None:
    policy = tenant_policy()
    if "eventId" in son and policy is not None and policy.field in son:
        raise ConfigurationError(
            "event_id is taken by another tenant's activity because the global "
            "unique index 'eventId_unique' is still in place; call "
            "mongoengine_activity.ensure_tenant_indexes() once to make event "
            "ids unique per tenant"
        )


def report_failure(
    request: WriteRequest, activity: Activity | None, error: Exception
) -> None:
    logger.warning(
        "could not write activity %s for %s: %s",
        request.son.get("type"),
        request.son.get("entity", {}).get("type"),
        type(error).__name__,
    )
    try:
        signals.send(
            signals.activity_failed,
            request.sender,
            activity=activity if activity is not None else _activity_from(request.son),
            error=error,
        )
    except Exception:
        logger.exception("an activity_failed receiver raised")
    if request.on_error == "raise":
        raise ActivityWriteError(
            f"could not write activity {request.son.get('type')!r}: {error}"
        ) from error


# --- manual logging


def _check_keys(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a non-string key {key!r}")
            if key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(
                    f"{where} key {key!r} may not start with '$' or contain '.' or NUL"
                )
            _check_keys(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}.{index}")


def _check_bson(value: Any, where: str) -> Any:
    normalized = normalize(value)
    try:
        bson.encode({"v": normalized})
    except (bson.errors.InvalidDocument, OverflowError) as error:
        raise ValueError(f"{where} cannot be stored in MongoDB: {error}") from None

    return value


class _ChangeInput(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)

    path: str = pydantic.Field(min_length=1)
    from_: Any = pydantic.Field(None, alias="from")
    to: Any = None


class _LogInput(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=True
    )

    type: str = pydantic.Field(min_length=1, max_length=200)
    entity_type: str = pydantic.Field(min_length=1, max_length=200)
    entity_id: Any
    user_id: ObjectId | int | str | None
    team_id: Any
    data: dict[str, Any]
    context: dict[str, Any]
    event_id: str | None = pydantic.Field(None, min_length=1, max_length=256)
    changes: list[_ChangeInput] | None
    created_at: dt.datetime | None

    @pydantic.field_validator("user_id", mode="before")
    @classmethod
    def _user(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be an ObjectId, a string, an integer or None")

        return value

    @pydantic.field_validator("entity_id")
    @classmethod
    def _entity_id(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("the entity has no id; save the document first")

        return _check_bson(value, "entity id")

    @pydantic.field_validator("data", "context")
    @classmethod
    def _mapping(cls, value: dict[str, Any], info: pydantic.ValidationInfo) -> Any:
        _check_keys(value, info.field_name or "data")
        return _check_bson(value, info.field_name or "data")

    @pydantic.field_validator("team_id")
    @classmethod
    def _team(cls, value: Any) -> Any:
        return _check_bson(value, "team_id")

    @pydantic.field_validator("created_at")
    @classmethod
    def _created_at(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        if value - dt.datetime.now(dt.UTC) > _MAX_CLOCK_SKEW:
            raise ValueError("lies in the future")

        return value


_ARGUMENT_NAMES = {"entity_type": "entity", "entity_id": "entity"}


def _validation_error(error: pydantic.ValidationError) -> ValidationError:
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    field = _ARGUMENT_NAMES.get(location[0], location[0]) if location else "input"
    path = ".".join([field, *location[1:]])
    message = first["msg"].removeprefix("Value error, ")
    return ValidationError(f"log_activity(): {path}: {message}", field=field)


def resolve_entity(entity: Any) -> tuple[Any, Any, ActivityOptions | None, Any]:
    """Return ``(type, id, options, sender)`` for a document, pair or mapping."""
    if getattr(entity, "_is_document", False):
        # A tracked model (it has activity_options) is its own sender.
        document_class = type(entity)
        tracked_options = getattr(document_class, "activity_options", None)
        if tracked_options is None:
            return document_class.__name__, entity.pk, None, Activity
        options: ActivityOptions = tracked_options()
        entity_type = options.entity_type or document_class.__name__
        return entity_type, entity.pk, options, document_class
    if isinstance(entity, Mapping):
        unknown = set(entity) - {"type", "id"}
        if unknown or "type" not in entity or "id" not in entity:
            raise ValidationError(
                "log_activity(): entity: a mapping needs exactly the keys "
                "'type' and 'id'",
                field="entity",
            )
        return entity["type"], entity["id"], None, Activity
    if isinstance(entity, tuple | list) and len(entity) == 2:
        return entity[0], entity[1], None, Activity

    raise ValidationError(
        "log_activity(): entity: give a document, a (type, id) pair or a "
        f"{{'type', 'id'}} mapping, not {type(entity).__name__}",
        field="entity",
    )


def prepare_request(
    type: str,
    *,
    entity: Any,
    user_id: Any = _UNSET,
    data: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    changes: list[Mapping[str, Any]] | None = None,
    team_id: Any = _UNSET,
    context: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
    on_error: Literal["log", "raise"] | None = None,
) -> WriteRequest:
    """Validate manual input and build its request; shared with bulk logging.

    Bad input raises :class:`~mongoengine_activity.errors.ValidationError`.
    """
    entity_type, entity_id, options, sender = resolve_entity(entity)
    tenant = (
        document_tenant(sender, entity.to_mongo(), options)
        if options is not None and options.multi_tenant
        else None
    )
    context_values = current_context()
    from_context, _ = _context_parts(dict(context_values), None)
    try:
        checked = _LogInput.model_validate(
            dict(
                type=type,
                entity_type=entity_type,
                entity_id=entity_id,
                user_id=from_context.get("user_id") if user_id is _UNSET else user_id,
                team_id=from_context.get("team_id") if team_id is _UNSET else team_id,
                data=dict(data) if data is not None else {},
                context=dict(context) if context is not None else {},
                event_id=event_id,
                changes=[dict(change) for change in changes]
                if changes is not None
                else None,
                created_at=created_at,
            )
        )
    except pydantic.ValidationError as error:
        raise _validation_error(error) from None

    son = build_son(
        type=checked.type,
        entity_type=checked.entity_type,
        entity_id=checked.entity_id,
        user_id=checked.user_id,
        team_id=checked.team_id,
        data=checked.data,
        changes=[
            {
                "path": change.path,
                "from": normalize(change.from_),
                "to": normalize(change.to),
            }
            for change in checked.changes or ()
        ],
        context=checked.context,
        created_at=checked.created_at,
        event_id=checked.event_id,
        options=options,
        context_values=context_values,
        tenant=tenant,
    )
    resolved_on_error = (
        on_error
        or (options.on_error if options is not None and options.on_error else None)
        or current_settings().on_error
    )
    return WriteRequest(
        son=son, sender=sender, options=options, on_error=resolved_on_error
    )


def log_activity(
    type: str,
    *,
    entity: Any,
    user_id: Any = _UNSET,
    data: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    changes: list[Mapping[str, Any]] | None = None,
    team_id: Any = _UNSET,
    context: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
    on_error: Literal["log", "raise"] | None = None,
) -> Activity | None:
    """Write one activity and return it.

    ``entity`` is a document, a ``(type, id)`` pair or a ``{"type", "id"}``
    mapping. ``user_id``, ``team_id`` and ``context`` default to the current
    :func:`~mongoengine_activity.activity_context`; explicit arguments win. A
    repeated ``event_id`` writes nothing and returns the activity stored first.
    Bad input raises :class:`~mongoengine_activity.errors.ValidationError`
    naming the field, and nothing is stored. Returns ``None`` when a
    ``before_log`` receiver cancelled the activity, or when writing failed with
    ``on_error="log"`` (the default).
    """
    return write_activity(
        prepare_request(
            type,
            entity=entity,
            user_id=user_id,
            data=data,
            event_id=event_id,
            changes=changes,
            team_id=team_id,
            context=context,
            created_at=created_at,
            on_error=on_error,
        )
    )
