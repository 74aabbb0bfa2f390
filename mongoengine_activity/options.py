"""Per-class options (``meta["activity"]``) and global settings (``configure()``).

Both are frozen pydantic models with ``extra="forbid"``: a typo or a bad value
raises :class:`~mongoengine_activity.errors.ConfigurationError` naming the class
and the option, when the class is created or ``configure()`` is called.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import threading
from collections.abc import Mapping
from typing import Any, Final, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretBytes, field_validator

from .durations import parse_duration
from .errors import ConfigurationError

__all__ = [
    "ActivityOptions",
    "ActivityTypes",
    "ChangeStreamOptions",
    "RateLimit",
    "Settings",
    "configure",
    "current_settings",
    "resolve_options",
]

_ENV_PREFIX = "MONGOENGINE_ACTIVITY_"


def _duration(value: object, info: pydantic.ValidationInfo) -> dt.timedelta | None:
    if value is None:
        return None

    return parse_duration(value, name=info.field_name or "duration")


PathList = tuple[str, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class ActivityTypes(_Frozen):
    """The verbs written for each kind of write; ``None`` keeps the default."""

    create: str | None = Field(None, min_length=1, description="Verb for a create.")
    update: str | None = Field(None, min_length=1, description="Verb for an update.")
    delete: str | None = Field(None, min_length=1, description="Verb for a delete.")


class RateLimit(_Frozen):
    """At most ``max_per_minute`` activities per user (or entity) per window."""

    max_per_minute: int = Field(gt=0, description="Activities allowed per window.")
    burst_window: dt.timedelta = Field(
        dt.timedelta(minutes=1), description='Window length, such as "1m".'
    )

    _check_window = field_validator("burst_window", mode="before")(_duration)


class ChangeStreamOptions(_Frozen):
    """Whether writes made outside MongoEngine are picked up by change streams."""

    enabled: bool = Field(False, description="Watch this model's collection.")
    full_document: Literal["updateLookup", "whenAvailable", "required", "default"] = (
        Field("updateLookup", description="The change stream's fullDocument mode.")
    )


# The stored names of an activity's own fields (see models.Activity); the
# tenant field is stored beside them, so it must not be one of them.
ACTIVITY_STORED_NAMES: Final = frozenset(
    {
        "_id",
        "userId",
        "entity",
        "type",
        "meta",
        "createdAt",
        "changes",
        "context",
        "teamId",
        "eventId",
        "expiresAt",
        "sig",
    }
)


# Names the tenant field may not take either: the activity's attribute names
# (``activity.tenant`` reads the loaded document by them), ``pk``, and the
# entity type, whose feed index would share its name with the tenant's own.
ACTIVITY_ATTRIBUTE_NAMES: Final = frozenset(
    {
        "id",
        "pk",
        "user_id",
        "data",
        "created_at",
        "team_id",
        "event_id",
        "expires_at",
        "signature",
        "tenant",
        "entityType",
    }
)


@functools.cache
def snake_case(name: str) -> str:
    """``PurchaseOrder`` -> ``purchase_order``; ``ÄrgerÜber`` -> ``ärger_über``.

    Letters of any script are kept (lower-cased); a word starts at an upper-case
    letter after a lower-case letter or digit, or before the last capital of an
    acronym (``HTTPServer`` -> ``http_server``).
    """
    spaced: list[str] = []
    for index, char in enumerate(name):
        if char.isupper() and index:
            before = name[index - 1]
            after = name[index + 1 : index + 2]
            if (
                before.islower()
                or before.isdigit()
                or (before.isupper() and after.islower())
            ):
                spaced.append("_")
        spaced.append(char)
    return re.sub(r"[\W_]+", "_", "".join(spaced)).strip("_").lower()


class ActivityOptions(_Frozen):
    """What a tracked model records; set in ``meta["activity"]``."""

    enabled: bool = Field(True, description="Track this model at all.")
    entity_type: str | None = Field(
        None, min_length=1, description="Stored entity type; the class name if unset."
    )
    track: PathList | None = Field(
        None, description="Only these fields (dotted paths) are tracked."
    )
    exclude: PathList = Field((), description="Fields (dotted paths) never tracked.")
    types: ActivityTypes = Field(
        ActivityTypes(), description="Verbs for create, update and delete."
    )
    user_field: str | None = Field(
        None, min_length=1, description="Field holding the acting user's id."
    )
    team_field: str | None = Field(
        None, min_length=1, description="Field holding the team id."
    )
    mask_fields: PathList = Field(
        (), description="Dotted paths whose values are masked before storing."
    )
    mask_pattern: str = Field("***", description="What masked values become.")
    ttl: dt.timedelta | None = Field(None, description="Retention of activities.")
    max_per_entity: int | None = Field(
        None, gt=0, description="Keep only the newest N activities per entity."
    )
    archive_after: dt.timedelta | None = Field(
        None, description="Move older activities to the archive collection."
    )
    dedup_window: dt.timedelta | None = Field(
        None, description="Write the same activity once within this window."
    )
    rate_limit: RateLimit | None = Field(None, description="Per-user rate limit.")
    change_streams: ChangeStreamOptions = Field(
        ChangeStreamOptions(), description="Change-stream tracking."
    )
    multi_tenant: bool = Field(False, description="Every activity has a tenant.")
    tenant_field: str = Field(
        "tenantId", min_length=1, description="Stored name of the tenant field."
    )
    tenant_document_field: str | None = Field(
        None,
        min_length=1,
        description="Document field holding the tenant; by default the "
        "document's field named like tenant_field, if it has one.",
    )
    tenant_isolation: Literal["strict", "soft"] = Field(
        "strict",
        description="strict: reads without a tenant raise; soft: reads "
        "without a tenant in context see every tenant.",
    )
    on_error: Literal["log", "raise"] | None = Field(
        None, description="What a failed activity write does; global if unset."
    )
    signing: bool | None = Field(
        None, description="Sign activities with HMAC; global if unset."
    )

    _check_durations = field_validator(
        "ttl", "archive_after", "dedup_window", mode="before"
    )(_duration)

    @field_validator("track", "exclude", "mask_fields", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("must be a list of dotted paths, not a single string")

        return value

    @field_validator("tenant_field")
    @classmethod
    def _tenant_field(cls, value: str) -> str:
        if value in ACTIVITY_STORED_NAMES or value in ACTIVITY_ATTRIBUTE_NAMES:
            raise ValueError(
                f"{value!r} is a name every activity already uses; name the "
                "tenant field something else, e.g. 'tenantId'"
            )
        if "." in value or value.startswith("$") or "\x00" in value:
            raise ValueError(
                f"{value!r} is not a plain top-level field name (no '.', no "
                "leading '$', no NUL)"
            )

        return value

    @field_validator("types", "change_streams", mode="before")
    @classmethod
    def _nested_none(cls, value: object, info: pydantic.ValidationInfo) -> object:
        if value is None:
            return (
                ActivityTypes()
                if info.field_name == "types"
                else (ChangeStreamOptions())
            )

        return value

    def entity_type_for(self, document: type[Any]) -> str:
        """The entity type ``document``'s activities are stored under."""
        return self.entity_type or document.__name__

    def verb(self, document: type[Any], kind: str) -> str:
        """The activity type of a ``"create"``, ``"update"`` or ``"delete"``."""
        default = f"{snake_case(self.entity_type_for(document))}_{kind}d"
        verb: str = getattr(self.types, kind) or default
        return verb


_OPTION_NAMES = frozenset(ActivityOptions.model_fields)


class Settings(_Frozen):
    """Global settings; change them with :func:`configure`."""

    collection: str = Field("activities", min_length=1, description="Collection.")
    archive_collection: str = Field(
        "activities_archive", min_length=1, description="Archive collection."
    )
    db_alias: str = Field("default", min_length=1, description="MongoEngine alias.")
    on_error: Literal["log", "raise"] = Field(
        "log", description="What a failed activity write does by default."
    )
    signing: bool = Field(False, description="Sign every model's activities.")
    signing_keys: dict[str, SecretBytes] = Field(
        {}, description="Signing keys by key id."
    )
    signing_key_id: str | None = Field(
        None, description="The key id that signs; the first key when unset."
    )
    chain_collection: str = Field(
        "activity_chains",
        min_length=1,
        description="Collection holding the head of each signed hash chain.",
    )
    pseudonym_key: SecretBytes | None = Field(
        None,
        description="Key of forget_user()'s pseudonyms; derived from the signing "
        "key when unset.",
    )
    pii_fields: PathList = Field(
        ("email", "phone", "ip", "userAgent"),
        description="Paths forget_user() masks in changes, data and context, "
        "besides every mask_fields.",
    )
    cursor_key: SecretBytes | None = Field(
        None,
        description="Signs page cursors; a random per-process key when unset, so "
        "set it when cursors must work across processes or restarts.",
    )
    mask_fields: PathList = Field(
        (), description="Paths masked in every activity's changes, data and context."
    )
    mask_pattern: str = Field("***", description="What masked values become.")
    max_value_bytes: int = Field(
        64 * 1024, gt=0, description="Larger values are replaced by a marker."
    )
    max_activity_bytes: int = Field(
        4 * 1024 * 1024,
        gt=1024,
        lt=16 * 1024 * 1024,
        description="Budget for all values of one activity.",
    )
    defaults: Mapping[str, Any] = Field(
        {}, description="Default per-class options for every tracked model."
    )

    @field_validator("collection", "archive_collection", "chain_collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        # MongoDB's naming rules for collections.
        if "$" in value or "\x00" in value:
            raise ValueError(f"collection name {value!r} may not contain '$' or NUL")
        if value.startswith("system."):
            raise ValueError(f"collection name {value!r} may not start with 'system.'")

        return value

    @field_validator("signing_keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        if isinstance(value, str):
            return _parse_key_list(value)
        if isinstance(value, Mapping):
            return {
                key: secret.encode() if isinstance(secret, str) else secret
                for key, secret in value.items()
            }

        return value

    @field_validator("pseudonym_key", mode="before")
    @classmethod
    def _pseudonym_key(cls, value: object) -> object:
        return value.encode() if isinstance(value, str) else value

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, value: Mapping[str, Any]) -> Mapping[str, Any]:
        unknown = sorted(set(value) - _OPTION_NAMES)
        if unknown:
            raise ValueError(f"unknown activity option(s): {', '.join(unknown)}")

        ActivityOptions.model_validate(dict(value))
        return dict(value)


def _parse_key_list(text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError("signing keys are written as 'k1:secret,k0:old'")
        keys[key_id.strip()] = secret.encode()

    return keys


def _explain(error: pydantic.ValidationError, where: str) -> ConfigurationError:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown option"
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")

    return ConfigurationError(f"{where}: option {location!r}: {message}")


def _settings_from_env() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("collection", "archive_collection", "db_alias", "on_error"):
        value = os.environ.get(_ENV_PREFIX + name.upper())
        if value:
            found[name] = value
    keys = os.environ.get(_ENV_PREFIX + "SIGNING_KEYS")
    if keys:
        found["signing_keys"] = keys
    key_id = os.environ.get(_ENV_PREFIX + "SIGNING_KEY_ID")
    if key_id:
        found["signing_key_id"] = key_id
    pseudonym_key = os.environ.get(_ENV_PREFIX + "PSEUDONYM_KEY")
    if pseudonym_key:
        found["pseudonym_key"] = pseudonym_key
    cursor_key = os.environ.get(_ENV_PREFIX + "CURSOR_KEY")
    if cursor_key:
        found["cursor_key"] = cursor_key.encode()
    if os.environ.get(_ENV_PREFIX + "SIGNING", "").lower() in {"1", "true", "yes"}:
        found["signing"] = True

    return found


_lock = threading.Lock()
_settings: Settings | None = None
_version = 0


def current_settings() -> Settings:
    """Return the settings in force (environment variables, then ``configure()``)."""
    global _settings
    settings = _settings
    if settings is None:
        with _lock:
            settings = _settings
            if settings is None:
                try:
                    settings = Settings.model_validate(_settings_from_env())
                except pydantic.ValidationError as error:
                    raise _explain(error, "environment") from None

                from .models import Activity

                Activity._apply_settings(settings)
                _settings = settings

    return settings


def settings_version() -> int:
    """A number that changes whenever :func:`configure` changes the settings."""
    return _version


def configure(*, reset: bool = False, **changes: Any) -> Settings:
    """Change global settings and default options; returns the new settings.

    Keyword arguments are :class:`Settings` fields (``collection``,
    ``signing_keys``, ``on_error``...) or per-class option names
    (``multi_tenant``, ``ttl``...), which become defaults for every tracked
    model. ``reset=True`` starts again from the environment variables.
    """
    global _settings, _version
    if reset:
        with _lock:
            _settings = None
    base = current_settings()
    values = base.model_dump()
    values["signing_keys"] = {
        key: secret.get_secret_value() for key, secret in base.signing_keys.items()
    }
    defaults = dict(base.defaults)
    for name, value in changes.items():
        if name in Settings.model_fields:
            values[name] = value
        elif name in _OPTION_NAMES:
            defaults[name] = value
        else:
            raise ConfigurationError(
                f"configure(): unknown setting {name!r}; see "
                "mongoengine_activity.Settings for the settings and "
                "ActivityOptions for the per-model options"
            )
    if base.pseudonym_key is not None and "pseudonym_key" not in changes:
        values["pseudonym_key"] = base.pseudonym_key.get_secret_value()
    values["defaults"] = defaults
    try:
        new = Settings.model_validate(values)
    except pydantic.ValidationError as error:
        raise _explain(error, "configure()") from None

    from .models import Activity

    with _lock:
        _settings = new
        _version += 1
    Activity._apply_settings(new)
    return new


def validate_options(raw: Mapping[str, Any], where: str) -> ActivityOptions:
    """Validate a ``meta["activity"]`` mapping, naming ``where`` in errors."""
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"{where}: meta['activity'] must be a dict, not {type(raw).__name__}"
        )
    try:
        return ActivityOptions.model_validate(dict(raw))
    except pydantic.ValidationError as error:
        raise _explain(error, where) from None


def resolve_options(raw: Mapping[str, Any], where: str) -> ActivityOptions:
    """Return the options in force: global defaults overlaid with ``raw``."""
    settings = current_settings()
    merged = {**settings.defaults, **raw}
    merged.setdefault("on_error", settings.on_error)
    merged.setdefault("signing", settings.signing)
    return validate_options(merged, where)
