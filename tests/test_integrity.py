"""Verification: tampering, deletion, insertion and reordering are detected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import mongoengine as me
import pytest
from bson import ObjectId

import mongoengine_activity as ma
from mongoengine_activity import (
    Activity,
    ChainProblem,
    TrackedDocument,
    activity_context,
    log_activity,
)
from mongoengine_activity._canonical import stream_id
from mongoengine_activity.signing import chain_collection


class SignedLedger(TrackedDocument):
    title = me.StringField()

    meta = {"activity": {"signing": True, "ttl": "30d"}}


@pytest.fixture(autouse=True)
def keys() -> Iterator[None]:
    ma.configure(
        signing_keys={"k1": b"secret"},
        signing_key_id="k1",
        multi_tenant=True,
        tenant_field="tenantId",
        tenant_isolation="soft",
    )
    yield


def _log_three() -> list[Activity]:
    """Three activities in one stream (tenant "acme"), every field filled."""
    ledger = SignedLedger(title="x")
    ledger.id = ObjectId("65f000000000000000000042")
    logged = []
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with activity_context(tenant="acme", request_id="r-1", ip="10.0.0.1"):
        for index in range(3):
            activity = log_activity(
                f"ledger_step_{index}",
                entity=ledger,
                user_id="u-1",
                team_id="t-1",
                event_id=f"e-{index}",
                data={"amount": index, "note": "n"},
                changes=[
                    {"path": "title", "from": "a", "to": "b"},
                    {"path": "step", "from": index, "to": index + 1},
                ],
                created_at=start + dt.timedelta(minutes=index),
                on_error="raise",
            )
            assert activity is not None
            logged.append(activity)
    return logged


def _collection() -> Any:
    return Activity._get_collection()


def _problems() -> list[tuple[str, int | None, int | None]]:
    return [
        (problem.kind, problem.seq, problem.last_seq)
        for problem in Activity.objects.verify_chain().problems
    ]


def test_an_untouched_log_verifies() -> None:
    logged = _log_three()

    results = [activity.verify_integrity() for activity in logged]
    report = Activity.objects.verify_chain()

    assert [(r.ok, r.reason, r.key_id, r.fields) for r in results] == [
        (True, "ok", "k1", ())
    ] * 3
    assert (report.ok, report.streams, report.activities, report.problems) == (
        True,
        1,
        3,
        [],
    )


_TAMPERS: list[tuple[str, dict[str, Any], str]] = [
    ("userId", {"$set": {"userId": "mallory"}}, "userId"),
    ("userId-removed", {"$unset": {"userId": ""}}, "userId"),
    ("entity.type", {"$set": {"entity.type": "Other"}}, "entity"),
    ("entity.id", {"$set": {"entity.id": 7}}, "entity"),
    ("type", {"$set": {"type": "ledger_refunded"}}, "type"),
    ("meta.amount", {"$set": {"meta.amount": 100}}, "meta.amount"),
    ("meta-added-key", {"$set": {"meta.extra": 1}}, "meta.extra"),
    ("meta-removed-key", {"$unset": {"meta.note": ""}}, "meta.note"),
    ("createdAt", {"$set": {"createdAt": dt.datetime(2020, 1, 1)}}, "createdAt"),
    ("changes.0.to", {"$set": {"changes.0.to": "evil"}}, "changes.0"),
    ("changes.1.path", {"$set": {"changes.1.path": "other"}}, "changes.1"),
    ("changes-emptied", {"$set": {"changes": []}}, "changes.0"),
    ("context.ip", {"$set": {"context.ip": "6.6.6.6"}}, "context.ip"),
    ("context.requestId", {"$set": {"context.requestId": "r-2"}}, "context.requestId"),
    ("teamId", {"$set": {"teamId": "t-2"}}, "teamId"),
    ("eventId", {"$set": {"eventId": "e-99"}}, "eventId"),
    ("expiresAt", {"$set": {"expiresAt": dt.datetime(2999, 1, 1)}}, "expiresAt"),
    ("tenantId", {"$set": {"tenantId": "globex"}}, "tenantId"),
    ("field-added", {"$set": {"extra": True}}, "extra"),
    ("sig.units.0.d", {"$set": {"sig.units.0.d": "0" * 64}}, "sig"),
    ("sig.units.0.s", {"$set": {"sig.units.0.s": "0" * 32}}, "?"),
    ("sig.units-dropped", {"$pop": {"sig.units": 1}}, "sig"),
    ("sig.mac", {"$set": {"sig.mac": "0" * 64}}, "sig"),
    ("sig.seq", {"$set": {"sig.seq": 9}}, "sig"),
    ("sig.prev", {"$set": {"sig.prev": "0" * 64}}, "sig"),
    ("sig.stream", {"$set": {"sig.stream": "0" * 32}}, "sig"),
    ("sig.kid", {"$set": {"sig.kid": "k0"}}, "sig"),
    ("sig.alg", {"$set": {"sig.alg": "none"}}, "sig"),
    ("sig.v", {"$set": {"sig.v": 2}}, "sig"),
    ("sig-added-key", {"$set": {"sig.foo": 1}}, "sig"),
    ("sig.units.0-added-key", {"$set": {"sig.units.0.foo": 1}}, "sig"),
    ("sig-removed", {"$unset": {"sig": ""}}, ""),
]


@pytest.mark.parametrize(
    ("update", "field"),
    [(update, field) for _, update, field in _TAMPERS],
    ids=[name for name, _, _ in _TAMPERS],
)
def test_tampering_with_any_stored_field_is_detected(
    update: dict[str, Any], field: str
) -> None:
    logged = _log_three()
    target = logged[1]
    if field == "?":
        # Changing a salt breaks the digest of the unit that salt belongs to.
        raw = _collection().find_one({"_id": target.pk})
        field = raw["sig"]["units"][0]["n"]
    _collection().update_one({"_id": target.pk}, update)

    result = target.verify_integrity()
    report = Activity.objects.verify_chain()

    assert not result.ok
    if field:
        assert field in result.fields
    else:
        assert result.reason == "unsigned"
    assert not report.ok
    assert target.pk in {problem.activity_id for problem in report.problems}


def test_a_changed_id_is_detected() -> None:
    logged = _log_three()
    raw = _collection().find_one({"_id": logged[1].pk})
    _collection().delete_one({"_id": logged[1].pk})
    raw["_id"] = ObjectId()
    _collection().insert_one(raw)

    result = ma.integrity.verify_son(raw)

    assert (result.ok, result.reason, result.fields) == (
        False,
        "fields changed",
        ("_id",),
    )
    assert ("tampered", 2, None) in _problems()


def test_deleting_an_activity_is_detected() -> None:
    logged = _log_three()
    _collection().delete_one({"_id": logged[1].pk})

    assert _problems() == [("missing", 2, 2)]


def test_deleting_the_newest_activity_is_detected() -> None:
    logged = _log_three()
    _collection().delete_one({"_id": logged[2].pk})

    assert _problems() == [("missing", 3, 3)]


def test_deleting_the_oldest_activity_is_detected_unless_pruning_is_allowed() -> None:
    logged = _log_three()
    _collection().delete_one({"_id": logged[0].pk})

    assert _problems() == [("missing", 1, 1)]
    assert Activity.objects.verify_chain(allow_pruned=True).ok


def test_inserting_a_copy_is_detected() -> None:
    logged = _log_three()
    copy = _collection().find_one({"_id": logged[1].pk})
    copy["_id"] = ObjectId()
    copy["eventId"] = "e-copy"
    _collection().insert_one(copy)

    kinds = sorted(kind for kind, _, _ in _problems())

    assert kinds == ["duplicate", "tampered"]


def test_inserting_an_unsigned_activity_is_detected() -> None:
    _log_three()
    forged = _collection().find_one({"sig.seq": 2})
    forged.pop("sig")
    forged["_id"] = ObjectId()
    forged["eventId"] = "e-forged"
    _collection().insert_one(forged)

    report = Activity.objects.verify_chain()

    assert report.problems == [
        ChainProblem("unsigned", None, activity_id=forged["_id"])
    ]


@pytest.mark.parametrize("field", ["sig", "createdAt", "type"], ids=str)
def test_swapping_two_activities_is_detected(field: str) -> None:
    logged = _log_three()
    first = _collection().find_one({"_id": logged[0].pk})
    second = _collection().find_one({"_id": logged[1].pk})
    _collection().update_one({"_id": first["_id"]}, {"$set": {field: second[field]}})
    _collection().update_one({"_id": second["_id"]}, {"$set": {field: first[field]}})

    problems = _problems()

    assert problems
    assert {kind for kind, _, _ in problems} <= {"tampered", "broken link", "duplicate"}


def test_swapping_whole_documents_between_ids_is_detected() -> None:
    logged = _log_three()
    first = _collection().find_one({"_id": logged[0].pk})
    second = _collection().find_one({"_id": logged[1].pk})
    body_first = {k: v for k, v in first.items() if k not in ("_id", "eventId")}
    body_second = {k: v for k, v in second.items() if k not in ("_id", "eventId")}
    _collection().replace_one({"_id": first["_id"]}, body_second)
    _collection().replace_one({"_id": second["_id"]}, body_first)

    assert [kind for kind, _, _ in _problems()].count("tampered") == 2


def test_a_fork_in_the_chain_is_reported() -> None:
    _log_three()
    stream = _collection().find_one()["sig"]["stream"]
    chains = chain_collection(ma.current_settings())
    head = chains.find_one({"_id": stream})
    second = _collection().find_one({"sig.seq": 2})
    # A writer that ignored the head: it appends after position 2 again.
    chains.update_one(
        {"_id": stream},
        {"$set": {"seq": 2, "link": ma._canonical.chain_link(second["sig"]["mac"])}},
    )
    with activity_context(tenant="acme"):
        ledger = SignedLedger(title="y")
        ledger.id = ObjectId("65f000000000000000000042")
        log_activity("ledger_fork", entity=ledger, on_error="raise")
    chains.update_one({"_id": stream}, {"$set": head})

    assert ("duplicate", 3, None) in _problems()


def test_a_lost_chain_head_is_reported() -> None:
    _log_three()
    chain_collection(ma.current_settings()).delete_many({})

    assert [kind for kind, _, _ in _problems()] == ["no head"]


def test_a_queryset_verifies_the_whole_of_its_streams() -> None:
    logged = _log_three()
    with activity_context(tenant="acme"):
        log_activity("other", entity=("Order", 1))  # unsigned, another stream
    _collection().delete_one({"_id": logged[0].pk})

    report = Activity.objects(type="ledger_step_2").verify_chain()

    assert (report.streams, report.activities) == (1, 2)
    assert [(p.kind, p.seq) for p in report.problems] == [("missing", 1)]


def test_unsigned_activities_in_the_queryset_are_reported() -> None:
    with activity_context(tenant="acme"):
        unsigned = log_activity("other", entity=("Order", 1))

    report = Activity.objects.verify_chain()

    assert unsigned is not None
    assert report.problems == [ChainProblem("unsigned", None, activity_id=unsigned.pk)]


def test_a_forged_redaction_record_is_rejected() -> None:
    logged = _log_three()
    _collection().update_one(
        {"_id": logged[0].pk},
        {
            "$set": {
                "userId": "someone else",
                "sig.redactions": [
                    {"kid": "k1", "units": ["userId"], "at": dt.datetime(2026, 1, 1)}
                ],
            }
        },
    )

    result = logged[0].verify_integrity()

    assert (result.ok, result.reason) == (False, "bad redaction")


def test_an_unknown_key_in_a_redaction_record_is_refused() -> None:
    ma.configure(pseudonym_key=b"p")
    logged = _log_three()
    Activity.forget_user("u-1")
    _collection().update_one(
        {"_id": logged[0].pk}, {"$set": {"sig.redactions.0.note": "x"}}
    )

    result = logged[0].verify_integrity()

    assert (result.ok, result.reason) == (False, "malformed signature")


def test_progress_is_reported_per_activity() -> None:
    _log_three()
    seen: list[int] = []

    Activity.objects.verify_chain(progress=seen.append)

    assert seen == [1, 1, 1]


def _two_tickets() -> None:
    ma.configure(signing=True, multi_tenant=False)
    for step in range(3):
        log_activity("ticket_step", entity=("Ticket", 7), data={"step": step})
        log_activity("ticket_step", entity=("Ticket", 8), data={"step": step})


def test_a_stream_deleted_entirely_is_reported_missing() -> None:
    _two_tickets()
    _collection().delete_many({"entity.id": 7})

    report = Activity.objects.verify_chain()

    stream = stream_id(["entity", "Ticket", 7])
    assert (report.streams, report.activities) == (2, 3)
    assert report.problems == [ChainProblem("missing", stream, seq=1, last_seq=3)]


def test_a_stream_deleted_entirely_is_found_from_an_entity_filter() -> None:
    _two_tickets()
    _collection().delete_many({"entity.id": 7})

    wiped = Activity.objects(__raw__={"entity.type": "Ticket", "entity.id": 7})
    kept = Activity.objects(__raw__={"entity.type": "Ticket", "entity.id": 8})

    stream = stream_id(["entity", "Ticket", 7])
    assert wiped.verify_chain().problems == [
        ChainProblem("missing", stream, seq=1, last_seq=3)
    ]
    assert (kept.verify_chain().ok, kept.verify_chain().streams) == (True, 1)


def test_a_tenant_deleted_entirely_is_reported_only_to_that_tenant() -> None:
    ma.configure(signing=True)
    for tenant in ("acme", "globex"):
        with activity_context(tenant=tenant):
            log_activity("ticket_step", entity=("Ticket", 7))
    _collection().delete_many({"tenantId": "acme"})

    with activity_context(tenant="acme"):
        acme = Activity.objects.verify_chain()
    with activity_context(tenant="globex"):
        globex = Activity.objects.verify_chain()

    stream = stream_id(["tenant", "tenantId", "acme"])
    assert acme.problems == [ChainProblem("missing", stream, seq=1, last_seq=1)]
    assert (globex.ok, globex.streams) == (True, 1)


def test_a_stream_pruned_entirely_is_accepted_with_allow_pruned() -> None:
    _two_tickets()
    _collection().delete_many({"entity.id": 7})

    report = Activity.objects.verify_chain(allow_pruned=True)

    assert (report.ok, report.streams, report.activities) == (True, 2, 3)
