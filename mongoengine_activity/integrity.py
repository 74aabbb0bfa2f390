"""Verifying signed activities one by one and as hash chains.

Read side: nothing here writes. ``activity.verify_integrity()`` checks one
activity against its signature; ``Activity.objects.verify_chain()`` walks every
stream touched by a QuerySet and finds deleted, inserted, duplicated and
reordered activities as well. Keys are looked up by the key id stored with each
signature, so activities signed with an old key verify as long as that key is
still configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mongoengine.queryset import QuerySet

from ._bson import normalize
from ._canonical import (
    ALGORITHM,
    FORMAT_VERSION,
    SPLIT_FIELDS,
    activity_mac,
    after_digest,
    chain_link,
    erasure_mac,
    field_units,
    macs_equal,
    redaction_mac,
    stream_id,
    unit_digest,
)
from .models import Activity, ActivityQuerySet
from .options import Settings, current_settings

__all__ = [
    "ChainProblem",
    "ChainReport",
    "IntegrityResult",
    "verify_chain",
    "verify_integrity",
    "verify_son",
]

logger = logging.getLogger("mongoengine_activity")


@dataclass(frozen=True, slots=True)
class IntegrityResult:
    """What :meth:`Activity.verify_integrity` found; true when it verified.

    ``reason`` is ``"ok"``, ``"unsigned"``, ``"malformed signature"``,
    ``"unknown key"``, ``"bad signature"`` (the signature itself was
    changed), ``"bad redaction"`` or ``"fields changed"``. ``fields`` names the
    units that failed (``userId``, ``meta.email``, ``changes.0``, ``sig``);
    ``redacted`` the units that ``forget_user`` redacted, which do not count as
    failures.
    """

    ok: bool
    reason: str
    key_id: str | None = None
    fields: tuple[str, ...] = ()
    redacted: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def _keys(settings: Settings) -> dict[str, bytes]:
    return {
        key_id: secret.get_secret_value()
        for key_id, secret in settings.signing_keys.items()
    }


# Every key a signature, a unit and a redaction record may hold: anything
# else was added after signing.
_SIG_KEYS = frozenset(
    {"v", "kid", "alg", "stream", "seq", "prev", "mac", "units", "redactions"}
)
_UNIT_KEYS = frozenset({"n", "d", "s"})
_REDACTION_KEYS = frozenset({"kid", "units", "removed", "after", "at", "mac"})


def _well_formed(sig: Any) -> bool:
    if not isinstance(sig, Mapping) or not _SIG_KEYS.issuperset(sig):
        return False
    try:
        return (
            isinstance(sig["kid"], str)
            and isinstance(sig["stream"], str)
            and isinstance(sig["seq"], int)
            and isinstance(sig["mac"], str)
            and (sig["prev"] is None or isinstance(sig["prev"], str))
            and all(
                _UNIT_KEYS.issuperset(unit)
                and isinstance(unit["n"], str)
                and isinstance(unit["d"], str)
                for unit in sig["units"]
            )
            and all(
                _REDACTION_KEYS.issuperset(record)
                for record in sig.get("redactions") or ()
            )
        )
    except (KeyError, TypeError):
        return False


def _redactions(
    sig: Mapping[str, Any], keys: Mapping[str, bytes]
) -> tuple[dict[str, str | None], set[str]] | None:
    """The redacted units (each with the digest of the value it must hold
    now, ``None`` when it must be absent) and the removed changes, or
    ``None`` if a record is forged."""
    redacted: dict[str, str | None] = {}
    removed: set[str] = set()
    for record in sig.get("redactions") or ():
        try:
            key = keys[record["kid"]]
            expected = redaction_mac(key, sig["mac"], record)
        except (KeyError, TypeError):
            return None
        if not macs_equal(expected, record.get("mac")):
            return None
        # A later record supersedes an earlier one for the same unit.
        redacted.update((name, digest) for name, digest in record["after"])
        removed.update(record.get("removed", ()))

    return redacted, removed


def _current_units(
    son: Mapping[str, Any], signed: Iterable[str], removed: set[str]
) -> dict[str, Any]:
    """The units of ``son``, with change indices mapped back to signed ones."""
    units = field_units(son)
    signed_changes = sorted(
        int(name.split(".", 1)[1])
        for name in signed
        if name.startswith("changes.") and name.split(".", 1)[1].isdigit()
    )
    if not removed or not signed_changes:
        return units

    surviving = [index for index in signed_changes if f"changes.{index}" not in removed]
    mapped = {
        name: value for name, value in units.items() if not name.startswith("changes.")
    }
    for name, value in units.items():
        if name.startswith("changes."):
            position = int(name.split(".", 1)[1])
            original = (
                surviving[position] if position < len(surviving) else f"+{position}"
            )
            mapped[f"changes.{original}"] = value

    return mapped


def verify_son(
    son: Mapping[str, Any], *, settings: Settings | None = None
) -> IntegrityResult:
    """Verify a stored activity (a raw mapping as MongoDB returned it)."""
    settings = settings or current_settings()
    sig = son.get("sig")
    if sig is None:
        return IntegrityResult(False, "unsigned")
    if not _well_formed(sig):
        return IntegrityResult(False, "malformed signature", fields=("sig",))

    key_id = sig["kid"]
    keys = _keys(settings)
    if key_id not in keys:
        return IntegrityResult(False, "unknown key", key_id, ("sig",))
    if sig.get("v") != FORMAT_VERSION or sig.get("alg") != ALGORITHM:
        return IntegrityResult(False, "malformed signature", key_id, ("sig",))
    if not macs_equal(activity_mac(keys[key_id], sig), sig["mac"]):
        return IntegrityResult(False, "bad signature", key_id, ("sig",))

    found = _redactions(sig, keys)
    if found is None:
        return IntegrityResult(False, "bad redaction", key_id, ("sig",))
    redacted, removed = found

    signed = {unit["n"]: unit for unit in sig["units"]}
    current = _current_units(son, signed, removed)
    failed: list[str] = []
    for name, unit in signed.items():
        if name in redacted:
            if not _holds(current, name, redacted[name]):
                failed.append(name)
            continue
        if name in removed:
            continue
        salt = unit.get("s")
        if name not in current or not isinstance(salt, str):
            failed.append(name)
            continue
        try:
            digest = unit_digest(bytes.fromhex(salt), name, current[name])
        except (TypeError, ValueError):
            failed.append(name)
            continue
        if not macs_equal(digest, unit["d"]):
            failed.append(name)
    for name, value in current.items():
        if name in signed:
            continue
        emptied = name in SPLIT_FIELDS and not value
        if emptied and any(other.startswith(name + ".") for other in signed):
            continue
        failed.append(name)

    redacted_names = tuple(sorted(redacted.keys() | removed))
    if failed:
        return IntegrityResult(
            False, "fields changed", key_id, tuple(sorted(failed)), redacted_names
        )

    return IntegrityResult(True, "ok", key_id, (), redacted_names)


def _holds(current: Mapping[str, Any], name: str, digest: str | None) -> bool:
    """Whether redacted unit ``name`` still holds what redaction left."""
    if digest is None:
        return name not in current
    try:
        return name in current and macs_equal(after_digest(name, current[name]), digest)
    except TypeError:
        return False


def verify_integrity(activity: Activity) -> IntegrityResult:
    """Verify ``activity`` as it is stored (re-read by id, raw)."""
    son: Mapping[str, Any] | None = None
    if activity.pk is not None:
        son = Activity._get_collection().find_one({"_id": activity.pk})
    if son is None:
        son = activity.to_mongo().to_dict()

    return verify_son(son)


# --- chains


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """One thing wrong with a stream.

    ``kind`` is ``"tampered"`` (the activity fails verify_integrity; ``detail``
    says why), ``"unsigned"``, ``"missing"`` (positions ``seq`` to
    ``last_seq`` are gone: deleted), ``"duplicate"`` (two activities claim one
    position: an inserted copy or a fork), ``"broken link"`` (the activity does
    not follow the one before it: inserted or reordered), ``"no head"`` or
    ``"bad erasure"``.
    """

    kind: str
    stream: str | None
    seq: int | None = None
    last_seq: int | None = None
    activity_id: Any = None
    detail: str = ""


@dataclass(slots=True)
class ChainReport:
    """What :meth:`ActivityQuerySet.verify_chain` found; true when all verified."""

    streams: int = 0
    activities: int = 0
    redacted: int = 0
    erased: int = 0
    problems: list[ChainProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok


class _Walk:
    """Follows one stream position by position."""

    def __init__(
        self,
        stream: str,
        head: Mapping[str, Any] | None,
        keys: Mapping[str, bytes],
        report: ChainReport,
        allow_pruned: bool,
    ) -> None:
        self.stream = stream
        self.head = head
        self.keys = keys
        self.report = report
        self.allow_pruned = allow_pruned
        self.expected = 1
        self.link: str | None = None
        self.known = True
        self.last_seq = 0
        self.erased = {
            record.get("seq"): record for record in (head or {}).get("erased") or ()
        }

    def problem(self, kind: str, **values: Any) -> None:
        self.report.problems.append(ChainProblem(kind, self.stream, **values))

    def _erased(self, seq: int) -> bool:
        record = self.erased.get(seq)
        if record is None:
            return False
        try:
            key = self.keys[record["kid"]]
            valid = macs_equal(erasure_mac(key, self.stream, record), record["emac"])
        except (KeyError, TypeError):
            valid = False
        if not valid:
            self.problem("bad erasure", seq=seq, detail="erasure record was forged")
            return False
        if self.known and record["prev"] != self.link:
            self.problem("broken link", seq=seq, detail="erased activity")
        self.link = chain_link(record["mac"])
        self.known = True
        self.report.erased += 1
        return True

    def skip_to(self, seq: int) -> None:
        """Account for positions before ``seq``: erased, pruned or missing."""
        gap_start: int | None = None
        while self.expected < seq:
            if self._erased(self.expected):
                if gap_start is not None:
                    self._gap(gap_start, self.expected - 1)
                    gap_start = None
            elif gap_start is None:
                gap_start = self.expected
            self.expected += 1
        if gap_start is not None:
            self._gap(gap_start, seq - 1)

    def _gap(self, first: int, last: int) -> None:
        self.known = False
        if first == 1 and self.allow_pruned:
            return

        self.problem("missing", seq=first, last_seq=last)

    def step(self, son: Mapping[str, Any], sig: Mapping[str, Any]) -> None:
        seq = sig["seq"]
        if seq < self.expected:
            self.problem("duplicate", seq=seq, activity_id=son.get("_id"))
            return

        self.skip_to(seq)
        if self.known and sig["prev"] != self.link:
            self.problem("broken link", seq=seq, activity_id=son.get("_id"))
        self.link = chain_link(sig["mac"])
        self.known = True
        self.expected = seq + 1
        self.last_seq = seq

    def finish(self) -> None:
        if self.head is None:
            self.problem("no head", detail="the chain collection has no head")
            return

        self.skip_to(self.head.get("seq", 0) + 1)
        if self.known and self.head.get("link") != self.link:
            self.problem("broken link", seq=self.head.get("seq"), detail="head")


def verify_chain(
    queryset: ActivityQuerySet,
    *,
    allow_pruned: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> ChainReport:
    """Verify every activity and every stream (entity or tenant) in ``queryset``.

    Each stream is read in full, in chain order, even when ``queryset`` holds
    only part of it. Streams are also found by their chain heads, so a stream
    whose every activity was deleted is reported (``"missing"``, unless
    ``forget_user`` left erasure records for them): every head for the whole
    log, the tenant's head for a tenant, the entity's head for a filter on
    exactly ``entity.type`` and ``entity.id``; other filters only see streams
    with at least one activity left. ``allow_pruned=True`` accepts streams whose oldest
    activities were removed on purpose (``ttl``, ``max_per_entity``,
    ``archive_after``). ``progress`` is called with the number of activities
    checked since its last call.
    """
    settings = current_settings()
    keys = _keys(settings)
    collection = Activity._get_collection()
    chains = collection.database[settings.chain_collection]
    query = queryset._query
    report = ChainReport()

    unsigned = collection.find(
        {"$and": [query, {"sig": {"$exists": False}}]}, {"_id": 1}
    )
    for son in unsigned:
        report.problems.append(ChainProblem("unsigned", None, activity_id=son["_id"]))

    found = {
        stream
        for stream in collection.distinct("sig.stream", query)
        if isinstance(stream, str)
    }
    # A stream whose every activity was deleted is found by its head alone.
    heads = _heads_in_scope(queryset, chains)
    streams = sorted(found | heads)
    for stream in streams:
        report.streams += 1
        head = chains.find_one({"_id": stream})
        walk = _Walk(stream, head, keys, report, allow_pruned)
        cursor = collection.find({"sig.stream": stream}).sort(
            [("sig.seq", 1), ("_id", 1)]
        )
        for son in cursor:
            report.activities += 1
            result = verify_son(son, settings=settings)
            if result.redacted:
                report.redacted += 1
            if not result.ok:
                walk.problem(
                    "tampered",
                    seq=son["sig"].get("seq")
                    if isinstance(son["sig"], Mapping)
                    else None,
                    activity_id=son.get("_id"),
                    detail=f"{result.reason}: {', '.join(result.fields)}",
                )
            if _chainable(son["sig"]):
                walk.step(son, son["sig"])
            if progress is not None:
                progress(1)
        walk.finish()

    if report.problems:
        logger.warning(
            "verify_chain found %d problem(s) in %d stream(s)",
            len(report.problems),
            report.streams,
        )
    return report


def _heads_in_scope(queryset: ActivityQuerySet, chains: Any) -> set[str]:
    """The chain heads of every stream ``queryset`` covers, when that can be
    told: all of them for the whole log, the tenant's for a tenant, the
    entity's for a filter on exactly ``entity.type`` and ``entity.id``."""
    tenant = queryset.tenant_filter()
    base: dict[str, Any] = QuerySet._query.fget(queryset)
    if tenant:
        ((name, value),) = tenant.items()
        if base and base != tenant:
            return set()
        wanted = [stream_id(["tenant", name, value])]
    elif not base:
        return {head["_id"] for head in chains.find({}, {"_id": 1})}
    elif set(base) == {"entity.type", "entity.id"} and not any(
        isinstance(value, Mapping) for value in base.values()
    ):
        entity_id = normalize(base["entity.id"])
        wanted = [stream_id(["entity", base["entity.type"], entity_id])]
    else:
        return set()

    return {head["_id"] for head in chains.find({"_id": {"$in": wanted}}, {"_id": 1})}


def _chainable(sig: Any) -> bool:
    return (
        isinstance(sig, Mapping)
        and isinstance(sig.get("seq"), int)
        and isinstance(sig.get("mac"), str)
    )
