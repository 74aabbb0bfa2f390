"""Signing activities as they are inserted, and chaining them per stream.

Part of the write path (step 7). Each signed activity stores under ``sig``:

- ``v``, ``kid``, ``alg``: format version, the id of the key that signed and
  ``"HMAC-SHA256"``;
- ``stream``, ``seq``, ``prev``: the hash chain: the activity's stream (its
  entity, or its tenant for multi-tenant models), its position in the stream
  from 1, and the link hash of the activity before it (``None`` for the first);
- ``units``: one ``{"n": name, "d": digest, "s": salt}`` per unit of the
  activity (see :func:`mongoengine_activity._canonical.field_units`);
- ``mac``: the HMAC over all of the above except the salts.

Concurrency: the head of every stream lives in the chain collection
(``Settings.chain_collection``) and is advanced by a compare-and-swap
(``find_one_and_update`` on the expected ``seq`` and ``link``), retried when
another writer got there first. Two writers appending to one stream therefore
get consecutive positions and never fork the chain. If the insert then fails,
the head is rolled back when nobody appended since; otherwise the position
stays a gap, which ``verify_chain()`` reports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from ._canonical import (
    ALGORITHM,
    FORMAT_VERSION,
    activity_mac,
    chain_link,
    field_units,
    stream_id,
    unit_digest,
)
from .errors import ActivityWriteError, ConfigurationError
from .models import Activity
from .options import ActivityOptions, Settings
from .tenancy import tenant_policy

__all__ = [
    "chain_collection",
    "sealed",
    "signing_key",
    "signing_wanted",
    "stream_of",
]

logger = logging.getLogger("mongoengine_activity")

_SALT_BYTES = 16
_MAX_ATTEMPTS = 50


def signing_wanted(options: ActivityOptions | None, settings: Settings) -> bool:
    """Whether an activity written with ``options`` is signed."""
    if options is not None and options.signing is not None:
        return options.signing

    return settings.signing


def signing_key(settings: Settings) -> tuple[str, bytes]:
    """Return ``(key id, secret)`` of the key that signs new activities.

    That is ``signing_key_id``, or the first configured key when it is unset.
    """
    keys = settings.signing_keys
    if not keys:
        raise ConfigurationError(
            "signing is on but no signing key is configured: call "
            "configure(signing_keys={'k1': b'secret'}, signing_key_id='k1') or "
            "set MONGOENGINE_ACTIVITY_SIGNING_KEYS='k1:secret'"
        )
    key_id = settings.signing_key_id or next(iter(keys))
    if key_id not in keys:
        raise ConfigurationError(
            f"signing_key_id {key_id!r} is not among the signing keys "
            f"({', '.join(sorted(keys))}); add it to signing_keys"
        )

    return key_id, keys[key_id].get_secret_value()


def chain_collection(settings: Settings) -> Collection[dict[str, Any]]:
    """The collection holding each stream's head, beside the activities."""
    database = Activity._get_collection().database
    chains: Collection[dict[str, Any]] = database[settings.chain_collection]
    return chains


def stream_of(son: Mapping[str, Any], options: ActivityOptions | None) -> str:
    """The stream an activity is chained in: its tenant, or else its entity."""
    policy = tenant_policy()
    field = policy.field if policy is not None else None
    if field is None and options is not None and options.multi_tenant:
        field = options.tenant_field
    if field is not None and son.get(field) is not None:
        return stream_id(["tenant", field, son[field]])

    entity = son.get("entity") or {}
    return stream_id(["entity", entity.get("type"), entity.get("id")])


def _append(
    chains: Collection[dict[str, Any]], stream: str, sign: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Advance ``stream``'s head by one; return the new and the old head."""
    for _ in range(_MAX_ATTEMPTS):
        head = chains.find_one({"_id": stream}, {"seq": 1, "link": 1})
        seq = 1 if head is None else head["seq"] + 1
        prev = None if head is None else head["link"]
        mac = sign(seq, prev)
        new = {"seq": seq, "link": chain_link(mac), "mac": mac, "prev": prev}
        if head is None:
            try:
                chains.insert_one({"_id": stream, "seq": seq, "link": new["link"]})
            except DuplicateKeyError:
                continue
            return new, None

        swapped = chains.find_one_and_update(
            {"_id": stream, "seq": head["seq"], "link": prev},
            {"$set": {"seq": seq, "link": new["link"]}},
        )
        if swapped is not None:
            return new, head

    raise ActivityWriteError(
        f"could not append to the hash chain after {_MAX_ATTEMPTS} attempts: "
        "too many writers on one stream at once"
    )


def _roll_back(
    chains: Collection[dict[str, Any]],
    stream: str,
    new: Mapping[str, Any],
    old: Mapping[str, Any] | None,
) -> None:
    mine = {"_id": stream, "seq": new["seq"], "link": new["link"]}
    if old is None:
        undone = chains.delete_one(mine).deleted_count == 1
    else:
        undone = (
            chains.find_one_and_update(
                mine, {"$set": {"seq": old["seq"], "link": old["link"]}}
            )
            is not None
        )
    if not undone:
        logger.warning(
            "an activity was not inserted after its chain position %s was taken; "
            "verify_chain() will report that position as missing",
            new["seq"],
        )


@contextmanager
def sealed(
    son: dict[str, Any], options: ActivityOptions | None, settings: Settings
) -> Iterator[None]:
    """Sign ``son`` in place for the insert made inside the block.

    Does nothing when signing is off for ``options``. The activity gets its
    ``_id`` here, because the id is signed too. When the block raises (the
    insert failed), the chain head is rolled back and the error propagates.
    """
    if not signing_wanted(options, settings):
        yield
        return

    key_id, key = signing_key(settings)
    son.setdefault("_id", ObjectId())
    son.pop("sig", None)
    units = []
    for name, value in field_units(son).items():
        salt = os.urandom(_SALT_BYTES)
        units.append({"n": name, "d": unit_digest(salt, name, value), "s": salt.hex()})
    sig: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "kid": key_id,
        "alg": ALGORITHM,
        "stream": stream_of(son, options),
        "units": units,
    }

    def sign(seq: int, prev: str | None) -> str:
        sig["seq"] = seq
        sig["prev"] = prev
        return activity_mac(key, sig)

    chains = chain_collection(settings)
    new, old = _append(chains, sig["stream"], sign)
    sig["seq"] = new["seq"]
    sig["prev"] = new["prev"]
    sig["mac"] = new["mac"]
    son["sig"] = sig
    try:
        yield
    except BaseException:
        _roll_back(chains, sig["stream"], new, old)
        raise
