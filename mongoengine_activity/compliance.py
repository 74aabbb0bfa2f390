"""Forgetting a user: pseudonymise or delete their activities.

``forget_user`` rewrites stored activities outside the write path (it logs no
activity of its own and sends no signal). Signed activities stay verifiable:
redacted units keep the digest they were signed with, lose their salt (so the
digest can no longer be tested against guesses) and are listed in a redaction
record that is MAC'd with the signing key; deleted activities leave an erasure
record in their stream's head so the chain still links.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ._bson import normalize, now_ms
from ._canonical import (
    after_digest,
    canonical,
    erasure_mac,
    field_units,
    pseudonym,
    redaction_mac,
    sign_bytes,
)
from .errors import ConfigurationError, ValidationError
from .masking import PathMatcher, drop_paths, mask_value
from .models import Activity, tracked_options
from .options import Settings, current_settings
from .signing import chain_collection, signing_key
from .tenancy import scope_query

__all__ = ["ForgetResult", "forget_user", "pii_paths", "pseudonym_for"]

logger = logging.getLogger("mongoengine_activity")

_BATCH = 500


@dataclass(frozen=True, slots=True)
class ForgetResult:
    """Counts of what :func:`forget_user` did.

    ``matched``: activities whose ``userId`` was the user; ``redacted``:
    activities rewritten; ``deleted``: activities removed; ``values``: values
    masked or removed (the user id counts as one per activity).
    """

    matched: int = 0
    redacted: int = 0
    deleted: int = 0
    values: int = 0


def pseudonym_for(user_id: Any, settings: Settings | None = None) -> str:
    """The stable pseudonym that replaces ``user_id`` when it is forgotten.

    Keyed with ``Settings.pseudonym_key``, or, when that is unset, with a key
    derived from the signing key (so rotating the signing key then changes
    future pseudonyms). Not reversible without the key.
    """
    settings = settings or current_settings()
    if settings.pseudonym_key is not None:
        key = settings.pseudonym_key.get_secret_value()
    elif settings.signing_keys:
        _, signing = signing_key(settings)
        key = bytes.fromhex(sign_bytes(signing, "pseudonym key"))
    else:
        raise ConfigurationError(
            "forget_user() needs a key for pseudonyms: configure(pseudonym_key=...) "
            "or set MONGOENGINE_ACTIVITY_PSEUDONYM_KEY (or configure a signing key)"
        )

    return pseudonym(key, normalize(user_id))


def pii_paths(entity_type: str | None, settings: Settings | None = None) -> list[str]:
    """The paths masked for an activity about ``entity_type``.

    ``Settings.pii_fields`` and ``Settings.mask_fields``, plus the
    ``mask_fields`` of every tracked model that logs that entity type.
    """
    settings = settings or current_settings()
    paths = [*settings.pii_fields, *settings.mask_fields]
    for options in tracked_options().get(str(entity_type), ()):
        paths.extend(path for path in options.mask_fields if path not in paths)

    return paths


def _redact_changes(
    changes: Any, matcher: PathMatcher, pattern: str, keep: bool
) -> tuple[Any, set[int]]:
    """Return the redacted changes and the indices removed entirely."""
    if not isinstance(changes, list):
        return changes, set()

    result: list[Any] = []
    removed: set[int] = set()
    for index, change in enumerate(changes):
        if not isinstance(change, dict) or not isinstance(change.get("path"), str):
            result.append(change)
            continue
        path = change["path"]
        if matcher.covers(path):
            if not keep:
                removed.add(index)
                continue
            change = {
                **change,
                "from": None if change.get("from") is None else pattern,
                "to": None if change.get("to") is None else pattern,
            }
        else:
            remainders = matcher.remainders(path)
            if remainders:
                apply = mask_value if keep else drop_paths
                args = (pattern,) if keep else ()
                change = {
                    **change,
                    "from": apply(change.get("from"), remainders, *args),
                    "to": apply(change.get("to"), remainders, *args),
                }
        result.append(change)

    return result, removed


def _redact(
    son: Mapping[str, Any],
    alias: str,
    paths: list[str],
    pattern: str,
    keep: bool,
) -> tuple[dict[str, Any], set[int]]:
    """Return the redacted top-level fields of ``son`` and removed change indices."""
    matcher = PathMatcher(paths)
    shapes = matcher.remainders("")
    fields: dict[str, Any] = {"userId": alias}
    for name in ("meta", "context"):
        value = son.get(name)
        if isinstance(value, dict):
            fields[name] = (
                mask_value(value, shapes, pattern)
                if keep
                else drop_paths(value, shapes)
            )
    fields["changes"], removed = _redact_changes(
        son.get("changes"), matcher, pattern, keep
    )

    return fields, removed


def _changed_units(
    before: Mapping[str, Any], after: Mapping[str, Any], removed: set[int]
) -> tuple[list[str], dict[str, Any]]:
    """The units that redaction changed, and the units of ``after`` (with the
    signed change indices)."""
    old = field_units(before)
    new_son = dict(after)
    if removed and isinstance(new_son.get("changes"), list):
        # Put placeholders back so the surviving changes keep their indices.
        changes = list(new_son["changes"])
        for index in sorted(removed):
            changes.insert(index, None)
        new_son["changes"] = changes
    new = field_units(new_son)
    removed_names = {f"changes.{index}" for index in removed}
    changed = [
        name
        for name, value in old.items()
        if name not in removed_names
        and (name not in new or canonical(new[name]) != canonical(value))
    ]
    return changed, new


def _sign_redaction(
    sig: dict[str, Any],
    units: list[str],
    removed: list[str],
    after: Mapping[str, Any],
    settings: Settings,
) -> dict[str, Any]:
    key_id, key = signing_key(settings)
    record: dict[str, Any] = {
        "kid": key_id,
        "units": sorted(units),
        "removed": sorted(removed),
        # What each redacted unit holds now (or None: gone), so that changing
        # a redacted value later fails verification like any other change.
        "after": [
            [name, after_digest(name, after[name]) if name in after else None]
            for name in sorted(units)
        ],
        "at": now_ms(),
    }
    record["mac"] = redaction_mac(key, sig["mac"], record)
    dropped = set(units) | set(removed)
    new_sig = dict(sig)
    new_sig["units"] = [
        {key: value for key, value in unit.items() if key != "s"}
        if unit.get("n") in dropped
        else unit
        for unit in sig["units"]
    ]
    new_sig["redactions"] = [*(sig.get("redactions") or ()), record]
    return new_sig


def _redact_all(
    query: dict[str, Any],
    alias: str,
    keep: bool,
    settings: Settings,
    progress: Callable[[int], Any] | None,
) -> ForgetResult:
    collection = Activity._get_collection()
    matched = redacted = values = 0
    paths_by_type: dict[Any, list[str]] = {}
    for son in collection.find(query).batch_size(_BATCH):
        matched += 1
        entity_type = (son.get("entity") or {}).get("type")
        if entity_type not in paths_by_type:
            paths_by_type[entity_type] = pii_paths(entity_type, settings)
        fields, removed = _redact(
            son, alias, paths_by_type[entity_type], settings.mask_pattern, keep
        )
        changed, after = _changed_units(son, {**son, **fields}, removed)
        removed_names = [f"changes.{index}" for index in sorted(removed)]
        update: dict[str, Any] = dict(fields)
        sig = son.get("sig")
        if isinstance(sig, dict) and "mac" in sig and (changed or removed_names):
            update["sig"] = _sign_redaction(
                sig, changed, removed_names, after, settings
            )
        values += len(changed) + len(removed_names)
        redacted += 1
        # One update per activity: mongomock's bulk_write does not accept the
        # UpdateOne of current pymongo.
        collection.update_one({"_id": son["_id"]}, {"$set": update})
        if progress is not None:
            progress(1)

    return ForgetResult(matched=matched, redacted=redacted, values=values)


def _delete_all(
    query: dict[str, Any],
    settings: Settings,
    progress: Callable[[int], Any] | None,
) -> ForgetResult:
    collection = Activity._get_collection()
    chains = chain_collection(settings)
    matched = deleted = 0
    ids: list[Any] = []
    projection = {"_id": 1, "sig": 1}
    for son in collection.find(query, projection).batch_size(_BATCH):
        matched += 1
        sig = son.get("sig")
        if isinstance(sig, dict) and isinstance(sig.get("stream"), str):
            key_id, key = signing_key(settings)
            record: dict[str, Any] = {
                "kid": key_id,
                "seq": sig.get("seq"),
                "prev": sig.get("prev"),
                "mac": sig.get("mac"),
                "at": now_ms(),
            }
            record["emac"] = erasure_mac(key, sig["stream"], record)
            chains.update_one(
                {"_id": sig["stream"]}, {"$push": {"erased": record}}, upsert=True
            )
        ids.append(son["_id"])
        if len(ids) >= _BATCH:
            deleted += collection.delete_many({"_id": {"$in": ids}}).deleted_count
            ids = []
        if progress is not None:
            progress(1)
    if ids:
        deleted += collection.delete_many({"_id": {"$in": ids}}).deleted_count

    return ForgetResult(matched=matched, deleted=deleted)


def forget_user(
    user_id: Any,
    *,
    strategy: Literal["redact", "delete"] = "redact",
    preserve_structure: bool = True,
    progress: Callable[[int], Any] | None = None,
) -> ForgetResult:
    """Forget ``user_id`` in the activity log; returns counts.

    ``"redact"`` replaces the user id of each of their activities with a
    stable pseudonym (:func:`pseudonym_for`) and masks PII (``pii_fields``,
    ``mask_fields`` and the model's ``mask_fields``) in ``changes``, ``data``
    and ``context``: with ``preserve_structure=True`` values become the mask
    pattern and keys stay; with ``False`` the keys and the changes of those
    paths are removed. ``"delete"`` removes their activities. Running it again
    finds nothing left to do. Signed activities keep verifying either way.

    Under multi-tenancy only the tenant in context is touched (strict
    isolation raises without one); erase from every tenant inside
    ``activity_context(tenant=ALL_TENANTS)``. PII paths are dotted paths from
    the top: ``email`` does not reach ``data.nested.email``.
    """
    if strategy not in ("redact", "delete"):
        raise ValidationError(
            f"forget_user(): strategy must be 'redact' or 'delete', not {strategy!r}",
            field="strategy",
        )
    if user_id is None:
        raise ValidationError(
            "forget_user(): user_id is None; system activities have no user",
            field="user_id",
        )

    settings = current_settings()
    # Under multi-tenancy only the tenant in context is touched (strict
    # isolation raises without one), like every read.
    query = scope_query({"userId": normalize(user_id)})
    signed = {**query, "sig.mac": {"$exists": True}}
    if Activity._get_collection().find_one(signed, {"_id": 1}) is not None:
        # Fails now, before any activity is changed, when no key can re-sign.
        signing_key(settings)
    if strategy == "delete":
        result = _delete_all(query, settings, progress)
    else:
        alias = pseudonym_for(user_id, settings)
        result = _redact_all(query, alias, preserve_structure, settings, progress)
    logger.info(
        "forget_user: %d activities matched, %d redacted, %d deleted",
        result.matched,
        result.redacted,
        result.deleted,
    )
    return result
