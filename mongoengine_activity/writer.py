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
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import bson
import pydantic
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from . import signals, write_behind
from ._bson import digest, normalize, now_ms, truncate_ms, value_size
from ._canonical import field_units
from .context import FIELD_KEYS, current_context
from .diff import Change
from .errors import ActivityWriteError, ConfigurationError, ValidationError
from .lifecycle import trim_entity
from .limits import check_limits
from .masking import mask_changes, mask_value, matcher_for
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


# Room kept in max_activity_bytes for what is added after capping: the _id
# (17 bytes) and the "_capped" record in meta.
_RESERVED_BYTES = 128
_CAPPED_KEY = "_capped"


def _truncation_marker(value: Any, size: int) -> dict[str, Any]:
    return {"_truncated": True, "size": size, "sha256": digest(value)}


def _encoded_size(value: Any) -> int:
    """The bytes ``value`` takes in a document (without its name), exactly."""
    return len(bson.encode({"v": value})) - 8


def _activity_size(son: dict[str, Any]) -> int | None:
    try:
        return len(bson.encode(son))
    except Exception:
        # Not storable at all: the insert reports it.
        return None


# What a signature adds per unit (name, digest, salt and their BSON framing,
# rounded up) and once (key id, algorithm, stream, position, links, MAC).
_SIGNATURE_UNIT_BYTES = 130
_SIGNATURE_BYTES = 400


def _signature_size(son: Mapping[str, Any]) -> int:
    """An upper bound of what signing ``son`` will add to it."""
    units = field_units(son)
    return _SIGNATURE_BYTES + sum(
        len(name.encode("utf-8", "surrogatepass")) + _SIGNATURE_UNIT_BYTES
        for name in units
    )


def _cap_sizes(
    son: dict[str, Any], settings: Settings, *, signed: bool = False
) -> None:
    """Keep ``son`` within both caps, encoding it once in the common case.

    A value over ``max_value_bytes`` becomes a marker. If the activity is still
    over ``max_activity_bytes``, the changes under one top-level field are
    folded into one change of that field (largest groups first), then the
    largest values become markers. A marker never replaces a value smaller than
    itself; as a last resort the whole of ``meta`` becomes one marker. What was
    done is counted in ``meta["_capped"]``; an activity that still cannot fit
    raises ``ValueError`` (reported as a failed write). With ``signed``, room
    for the signature is kept free, so the signed activity fits too.
    """
    budget = settings.max_activity_bytes - _RESERVED_BYTES
    if signed:
        budget -= _signature_size(son)
    total = _activity_size(son)
    if total is None or total <= min(settings.max_value_bytes, budget):
        return

    counts = {"values": 0, "changes": 0}
    _cap_each_value(son, settings.max_value_bytes, counts)
    total = _activity_size(son)
    if total is not None and total > budget:
        total = _fold_changes(son, total, budget, counts)
        meta = dict(son["meta"])
        if total > budget:
            total = _cap_largest_values(son, total, budget, counts)
        if total > budget and meta:
            # Too many small values in data: the whole of it becomes a marker
            # (of data as it was before its values were replaced).
            marker = _truncation_marker(meta, _encoded_size(meta))
            if _encoded_size(marker) < _encoded_size(son["meta"]):
                son["meta"] = marker
                counts["values"] += 1
    if counts["values"] or counts["changes"]:
        son["meta"][_CAPPED_KEY] = {k: v for k, v in counts.items() if v}
        total = _activity_size(son)
    if signed and total is not None:
        total += _signature_size(son)
    if total is not None and total > settings.max_activity_bytes - 17:
        raise ValueError(
            f"the activity takes {total} bytes, over max_activity_bytes "
            f"({settings.max_activity_bytes}), even with its values replaced"
        )


def _value_slots(son: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    slots = [(change, side) for change in son["changes"] for side in ("from", "to")]
    data = son["meta"]
    slots.extend((data, key) for key in data if key != _CAPPED_KEY)
    return slots


def _replace(holder: dict[str, Any], key: str, size: int) -> int:
    """Replace ``holder[key]`` (``size`` bytes) by a marker if that is smaller;
    return the bytes saved."""
    marker = _truncation_marker(holder[key], size)
    saved = size - _encoded_size(marker)
    if saved <= 0:
        return 0
    holder[key] = marker
    return saved


def _cap_each_value(son: dict[str, Any], limit: int, counts: dict[str, int]) -> None:
    for holder, key in _value_slots(son):
        size = value_size(holder[key])
        if size > limit and _replace(holder, key, size):
            counts["values"] += 1


def _fold_changes(
    son: dict[str, Any], total: int, budget: int, counts: dict[str, int]
) -> int:
    """Fold the changes under one top-level field into one change with
    markers for ``from`` and ``to``, largest groups first, until ``son`` is
    within ``budget``; return its new size."""
    groups: dict[str, list[int]] = {}
    for index, change in enumerate(son["changes"]):
        groups.setdefault(change["path"].split(".", 1)[0], []).append(index)
    sizes = {
        field: sum(_encoded_size(son["changes"][i]) + 8 for i in indexes)
        for field, indexes in groups.items()
        if len(indexes) > 1
    }
    folded: dict[int, dict[str, Any] | None] = {}
    for field in sorted(sizes, key=lambda name: sizes[name], reverse=True):
        if total <= budget:
            break
        members = [son["changes"][i] for i in groups[field]]
        change = {
            "path": field,
            **{
                side: _folded_marker([c[side] for c in members])
                for side in ("from", "to")
            },
        }
        saved = sizes[field] - _encoded_size(change)
        if saved <= 0:
            continue
        total -= saved
        counts["changes"] += len(members)
        first, *rest = groups[field]
        folded[first] = change
        folded.update(dict.fromkeys(rest))
    if not folded:
        return total

    kept = (folded.get(index, change) for index, change in enumerate(son["changes"]))
    son["changes"] = [change for change in kept if change is not None]
    return _activity_size(son) or total


def _folded_marker(values: list[Any]) -> dict[str, Any]:
    return {
        "_truncated": True,
        "changes": len(values),
        "size": _encoded_size(values),
        "sha256": digest(values),
    }


def _cap_largest_values(
    son: dict[str, Any], total: int, budget: int, counts: dict[str, int]
) -> int:
    sized = [
        (value_size(holder[key]), holder, key) for holder, key in _value_slots(son)
    ]
    for size, holder, key in sorted(sized, key=lambda slot: slot[0], reverse=True):
        if total <= budget:
            break
        if isinstance(holder[key], dict) and holder[key].get("_truncated") is True:
            continue
        saved = _replace(holder, key, size)
        if saved:
            total -= saved
            counts["values"] += 1

    return _activity_size(son) or total


def _mask(
    son: dict[str, Any], options: ActivityOptions | None, settings: Settings
) -> None:
    class_paths = options.mask_fields if options is not None else ()
    class_pattern = options.mask_pattern if options is not None else "***"
    if class_paths:
        son["changes"] = mask_changes(
            son["changes"], matcher_for(tuple(class_paths)), class_pattern
        )
    if settings.mask_fields:
        matcher = matcher_for(tuple(settings.mask_fields))
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
    signed = signing_wanted(request.options, settings)
    _cap_sizes(son, settings, signed=signed)

    activity: Activity | None = None
    if signals.has_receivers(signals.before_log, sender):
        activity = _activity_from(son)
        replies = signals.send(signals.before_log, sender, activity=activity)
        if any(reply is False for _, reply in replies):
            logger.debug("activity %s cancelled by a before_log receiver", son["type"])
            return Admitted(son, activity, outcome="cancelled")
        _check_received(activity, request.son["type"])
        son = _keep_tenant(activity.to_mongo().to_dict(), request.son)
        _cap_sizes(son, settings, signed=signed)

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


def _check_received(activity: Activity, verb: str) -> None:
    """Refuse an activity a ``before_log`` receiver left unstorable, before
    anything is written."""
    problem = None
    if not isinstance(activity.type, str) or not activity.type.strip():
        problem = "type must be a non-blank string"
    elif (
        activity.entity is None
        or not activity.entity.type
        or activity.entity.id is None
    ):
        problem = "entity must keep its type and id"
    elif not isinstance(activity.created_at, dt.datetime):
        problem = "created_at must stay a datetime"
    if problem is not None:
        raise ValidationError(
            f"a before_log receiver left activity {verb!r} invalid: {problem}",
            field="before_log",
        )


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


def on_error_for(options: ActivityOptions | None) -> Literal["log", "raise"]:
    """What a failed write does: the model's ``on_error``, else the setting."""
    if options is not None and options.on_error is not None:
        return options.on_error

    return current_settings().on_error


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


# MongoDB stores documents nested at most 100 levels deep; the activity
# around a value takes some of them.
_MAX_DEPTH = 90


def _check_keys(value: Any, where: str, top: str, depth: int = 1) -> None:
    """Refuse keys MongoDB cannot store and nesting deeper than it allows;
    ``where`` names the value in messages, ``top`` the argument it is in."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{top} nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a non-string key {key!r}")
            if key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(
                    f"{where} key {key!r} may not start with '$' or contain '.' or NUL"
                )
            _check_keys(item, f"{where}.{key}", top, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}.{index}", top, depth + 1)


def _check_value(value: Any, where: str, info: pydantic.ValidationInfo) -> Any:
    """``value`` if MongoDB can store it, else ``ValueError`` naming ``where``."""
    _check_keys(value, where, where)
    return _check_bson(value, where, info)


# Encoding each field apart only to name the one MongoDB cannot store would
# cost one encode per field of every activity. The first validation pass, run
# with ``_FAST_PASS`` as its context, skips it and the whole input is encoded
# once; only when that fails does a second pass encode field by field.
_FAST_PASS = {"encode": False}


def _check_bson(value: Any, where: str, info: pydantic.ValidationInfo) -> Any:
    if info.context is _FAST_PASS:
        return value
    normalized = normalize(value)
    try:
        bson.encode({"v": normalized})
    except (bson.errors.InvalidDocument, OverflowError) as error:
        raise ValueError(f"{where} cannot be stored in MongoDB: {error}") from None

    return value


def _storable(checked: _LogInput) -> bool:
    """Whether MongoDB can store every value of ``checked``, in one encode."""
    changes = [[change.from_, change.to] for change in checked.changes or ()]
    values = [
        checked.entity_id,
        checked.user_id,
        checked.team_id,
        checked.data,
        checked.context,
        changes,
    ]
    try:
        bson.encode({"v": normalize(values)})
    except (bson.errors.InvalidDocument, OverflowError):
        return False

    return True


def _not_a(kind: str, value: Any) -> ValueError:
    return ValueError(f"must be {kind}, not {type(value).__name__}")


class _ChangeInput(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)

    path: str = pydantic.Field(min_length=1)
    from_: Any = pydantic.Field(None, alias="from")
    to: Any = None

    @pydantic.field_validator("from_", "to")
    @classmethod
    def _value(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        return _check_value(value, "from" if info.field_name == "from_" else "to", info)


class _LogInput(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, frozen=True
    )

    type: str = pydantic.Field(min_length=1, max_length=200)
    entity_type: str = pydantic.Field(min_length=1, max_length=200)
    entity_id: Any
    user_id: Any
    team_id: Any
    data: dict[str, Any]
    context: dict[str, Any]
    event_id: str | None = pydantic.Field(None, min_length=1, max_length=256)
    changes: list[_ChangeInput] | None
    created_at: dt.datetime | None
    on_error: Literal["log", "raise"] | None

    @pydantic.field_validator("type", "entity_type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")

        return value

    @pydantic.field_validator("user_id", mode="before")
    @classmethod
    def _user(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(
            value, ObjectId | uuid.UUID | str | int
        ):
            raise _not_a("an ObjectId, a UUID, a string, an integer or None", value)

        return _check_bson(value, "user_id", info)

    @pydantic.field_validator("entity_id")
    @classmethod
    def _entity_id(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        if value is None:
            raise ValueError("the entity has no id; save the document first")

        return _check_value(value, "entity id", info)

    @pydantic.field_validator("data", "context", mode="before")
    @classmethod
    def _is_mapping(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _not_a("a mapping", value)

        return dict(value)

    @pydantic.field_validator("data", "context")
    @classmethod
    def _mapping(cls, value: dict[str, Any], info: pydantic.ValidationInfo) -> Any:
        return _check_value(value, info.field_name or "data", info)

    @pydantic.field_validator("changes", mode="before")
    @classmethod
    def _change_list(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            raise _not_a("a list of {'path', 'from', 'to'} mappings", value)
        for index, change in enumerate(value):
            if not isinstance(change, Mapping):
                raise pydantic.ValidationError.from_exception_data(
                    "changes",
                    [
                        {
                            "type": "value_error",
                            "loc": (index,),
                            "input": change,
                            "ctx": {
                                "error": _not_a(
                                    "a {'path', 'from', 'to'} mapping", change
                                )
                            },
                        }
                    ],
                )

        return [dict(change) for change in value]

    @pydantic.field_validator("team_id")
    @classmethod
    def _team(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        return _check_value(value, "team_id", info)

    @pydantic.field_validator("created_at", mode="before")
    @classmethod
    def _created_at(cls, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise _not_a("a datetime", value)
        moment: dt.datetime = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        if moment - dt.datetime.now(dt.UTC) > _MAX_CLOCK_SKEW:
            raise ValueError("lies in the future")

        return moment


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
        entity_type = options.entity_type_for(document_class)
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
    values = dict(
        type=type,
        entity_type=entity_type,
        entity_id=entity_id,
        user_id=from_context.get("user_id") if user_id is _UNSET else user_id,
        team_id=from_context.get("team_id") if team_id is _UNSET else team_id,
        data=data if data is not None else {},
        context=context if context is not None else {},
        event_id=event_id,
        changes=changes,
        created_at=created_at,
        on_error=on_error,
    )
    try:
        checked = _LogInput.model_validate(values, context=_FAST_PASS)
        if not _storable(checked):
            _LogInput.model_validate(values)
            # The second pass names the field; this is only a safety net.
            raise ValidationError(
                "log_activity(): the input cannot be stored in MongoDB", field="data"
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
    return WriteRequest(
        son=son,
        sender=sender,
        options=options,
        on_error=checked.on_error or on_error_for(options),
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
