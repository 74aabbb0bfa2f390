"""forget_user: pseudonyms, PII masking, deletion, idempotency, verification."""

from __future__ import annotations

import re
from typing import Any

import pytest
from bson import ObjectId

import mongoengine_activity as ma
from mongoengine_activity import (
    Activity,
    ConfigurationError,
    ForgetResult,
    ValidationError,
    activity_context,
    log_activity,
)
from mongoengine_activity.compliance import pii_paths, pseudonym_for

from .models import Order

USER = ObjectId("65f000000000000000000007")
OTHER = ObjectId("65f000000000000000000008")


def _log(user: Any = USER, entity: Any = ("Order", 1)) -> Activity:
    with activity_context(ip="10.0.0.1", user_agent="curl/8", request_id="r-1"):
        activity = log_activity(
            "order_updated",
            entity=entity,
            user_id=user,
            data={"email": "ann@example.com", "carrier": "UPS"},
            changes=[
                {"path": "email", "from": "old@example.com", "to": "ann@example.com"},
                {"path": "status", "from": "new", "to": "paid"},
                {
                    "path": "card",
                    "from": None,
                    "to": {"number": "4111", "brand": "visa"},
                },
            ],
            on_error="raise",
        )
    assert activity is not None
    return activity


def _stored(activity: Activity) -> dict[str, Any]:
    raw = Activity._get_collection().find_one({"_id": activity.pk})
    assert raw is not None
    return raw


@pytest.fixture
def pseudonym_key() -> None:
    ma.configure(pseudonym_key=b"pseudonyms")


def test_pseudonyms_are_stable_keyed_and_distinct(pseudonym_key: None) -> None:
    alias = pseudonym_for(USER)

    assert re.fullmatch(r"anon_[0-9a-f]{32}", alias)
    assert pseudonym_for(USER) == alias
    assert pseudonym_for(OTHER) != alias
    assert pseudonym_for(str(USER)) != alias
    ma.configure(pseudonym_key=b"another key")
    assert pseudonym_for(USER) != alias


def test_the_pseudonym_key_falls_back_to_one_derived_from_the_signing_key() -> None:
    ma.configure(signing_keys={"k1": b"secret"})

    alias = pseudonym_for(USER)

    ma.configure(pseudonym_key=b"secret")
    assert alias != pseudonym_for(USER)


def test_forgetting_without_any_key_is_a_configuration_error() -> None:
    _log()

    with pytest.raises(ConfigurationError, match="needs a key for pseudonyms"):
        Activity.forget_user(USER)


def test_redact_pseudonymises_and_masks_pii(pseudonym_key: None) -> None:
    activity = _log(entity=Order(id=ObjectId("65f000000000000000000001")))
    untouched = _log(user=OTHER)

    result = Activity.forget_user(USER)

    raw = _stored(activity)
    assert result == ForgetResult(matched=1, redacted=1, deleted=0, values=5)
    assert raw["userId"] == pseudonym_for(USER)
    assert raw["meta"] == {"email": "***", "carrier": "UPS"}
    assert raw["context"] == {"ip": "***", "userAgent": "***", "requestId": "r-1"}
    assert raw["changes"] == [
        {"path": "email", "from": "***", "to": "***"},
        {"path": "status", "from": "new", "to": "paid"},
        # Order's own mask_fields (card.number) applied when it was written.
        {"path": "card", "from": None, "to": {"number": "***", "brand": "visa"}},
    ]
    assert _stored(untouched)["userId"] == OTHER
    assert _stored(untouched)["meta"]["email"] == "ann@example.com"


def test_forgetting_twice_finds_nothing_the_second_time(pseudonym_key: None) -> None:
    activity = _log()
    Activity.forget_user(USER)
    once = _stored(activity)

    again = Activity.forget_user(USER)

    assert again == ForgetResult()
    assert _stored(activity) == once


def test_without_preserved_structure_pii_keys_and_changes_are_removed(
    pseudonym_key: None,
) -> None:
    activity = _log()

    result = Activity.forget_user(USER, preserve_structure=False)

    raw = _stored(activity)
    assert result.values == 6
    assert raw["meta"] == {"carrier": "UPS"}
    assert raw["context"] == {"requestId": "r-1"}
    assert raw["changes"] == [
        {"path": "status", "from": "new", "to": "paid"},
        # The entity type is Order, so Order's mask_fields (card.number) apply.
        {"path": "card", "from": None, "to": {"brand": "visa"}},
    ]


def test_configured_pii_fields_are_masked(pseudonym_key: None) -> None:
    ma.configure(pii_fields=["carrier"])
    activity = _log()

    Activity.forget_user(USER)

    raw = _stored(activity)
    assert raw["meta"] == {"email": "ann@example.com", "carrier": "***"}
    assert raw["context"]["ip"] == "10.0.0.1"


def test_pii_paths_join_settings_and_model_mask_fields() -> None:
    ma.configure(mask_fields=["secret"])

    assert pii_paths("Order") == [
        "email",
        "phone",
        "ip",
        "userAgent",
        "secret",
        "card.number",
    ]
    assert pii_paths("Unknown") == ["email", "phone", "ip", "userAgent", "secret"]


def test_delete_removes_only_the_users_activities(pseudonym_key: None) -> None:
    _log()
    _log()
    kept = _log(user=OTHER)

    result = Activity.forget_user(USER, strategy="delete")

    assert result == ForgetResult(matched=2, deleted=2)
    assert [activity.pk for activity in Activity.objects] == [kept.pk]
    assert Activity.forget_user(USER, strategy="delete") == ForgetResult()


@pytest.mark.parametrize("preserve", [True, False], ids=["masked", "removed"])
def test_a_redacted_signed_log_still_verifies(preserve: bool) -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activities = [_log(), _log(user=OTHER), _log()]

    Activity.forget_user(USER, preserve_structure=preserve)

    results = [activity.verify_integrity() for activity in activities]
    assert [result.ok for result in results] == [True, True, True]
    assert results[1].redacted == ()
    expected = ["changes.0", "changes.2", "context.ip", "context.userAgent"]
    assert results[0].redacted == (*expected, "meta.email", "userId")
    report = Activity.objects.verify_chain()
    assert (report.ok, report.redacted) == (True, 2)


def test_redaction_drops_the_salts_of_redacted_units() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()

    Activity.forget_user(USER)

    units = {unit["n"]: unit for unit in _stored(activity)["sig"]["units"]}
    assert "s" not in units["userId"] and "s" not in units["meta.email"]
    assert "s" in units["meta.carrier"]


def test_tampering_after_redaction_is_still_detected() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()
    Activity.forget_user(USER)

    Activity._get_collection().update_one(
        {"_id": activity.pk}, {"$set": {"meta.carrier": "DHL"}}
    )

    result = activity.verify_integrity()
    assert (result.ok, result.fields) == (False, ("meta.carrier",))


@pytest.mark.parametrize(
    ("preserve", "update"),
    [
        (True, {"$set": {"userId": "u-99"}}),
        (True, {"$set": {"userId": {"a": 1}}}),
        (True, {"$set": {"meta.email": "evil@example.com"}}),
        (True, {"$set": {"context.ip": "6.6.6.6"}}),
        (True, {"$set": {"changes.0.to": "x@example.com"}}),
        (True, {"$unset": {"meta.email": 1}}),
        (False, {"$set": {"userId": "u-99"}}),
        (False, {"$set": {"meta.email": "readded@example.com"}}),
        (False, {"$set": {"context.ip": "6.6.6.6"}}),
    ],
    ids=[
        "pseudonym-replaced",
        "pseudonym-made-a-dict",
        "masked-meta",
        "masked-context",
        "masked-change",
        "masked-key-removed",
        "removed-pseudonym-replaced",
        "removed-meta-readded",
        "removed-context-readded",
    ],
)
def test_a_redacted_unit_changed_after_redaction_is_detected(
    preserve: bool, update: dict[str, Any]
) -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()
    Activity.forget_user(USER, preserve_structure=preserve)
    assert activity.verify_integrity().ok

    Activity._get_collection().update_one({"_id": activity.pk}, update)

    result = activity.verify_integrity()
    (path,) = update[next(iter(update))]
    assert (result.ok, result.reason) == (False, "fields changed")
    assert result.fields == (path.removesuffix(".to"),)
    report = Activity.objects.verify_chain()
    assert [problem.kind for problem in report.problems] == ["tampered"]


@pytest.mark.parametrize("preserve", [True, False], ids=["masked", "removed"])
def test_forgetting_twice_leaves_the_log_verifiable(preserve: bool) -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()
    Activity.forget_user(USER, preserve_structure=preserve)

    Activity.forget_user(USER, preserve_structure=preserve)

    assert len(_stored(activity)["sig"]["redactions"]) == 1
    assert activity.verify_integrity().ok
    assert Activity.objects.verify_chain().ok


def test_a_redaction_record_without_its_after_values_is_refused() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()
    Activity.forget_user(USER)
    raw = _stored(activity)
    del raw["sig"]["redactions"][0]["after"]
    Activity._get_collection().replace_one({"_id": activity.pk}, raw)

    assert activity.verify_integrity().reason == "bad redaction"


def test_a_redacted_key_set_back_is_not_accepted_twice() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    activity = _log()
    Activity.forget_user(USER)
    raw = _stored(activity)
    raw["sig"]["redactions"][0]["units"].append("meta.carrier")
    Activity._get_collection().replace_one({"_id": activity.pk}, raw)

    assert activity.verify_integrity().reason == "bad redaction"


def test_deleted_signed_activities_leave_the_chain_verifiable() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    _log(user=OTHER)
    _log()
    _log(user=OTHER)
    _log()

    result = Activity.forget_user(USER, strategy="delete")

    report = Activity.objects.verify_chain()
    assert result.deleted == 2
    assert (report.ok, report.activities, report.erased) == (True, 2, 2)


def test_deleting_every_activity_of_a_stream_leaves_it_verifiable() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    _log()
    _log()

    Activity.forget_user(USER, strategy="delete")

    report = Activity.objects.verify_chain()
    assert (report.ok, report.streams, report.activities, report.erased) == (
        True,
        1,
        0,
        2,
    )


def test_deleting_without_an_erasure_record_is_detected() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    _log(user=OTHER)
    victim = _log()
    _log(user=OTHER)

    Activity._get_collection().delete_one({"_id": victim.pk})

    assert [p.kind for p in Activity.objects.verify_chain().problems] == ["missing"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"user_id": USER, "strategy": "shred"}, "strategy must be 'redact' or"),
        ({"user_id": None}, "user_id is None"),
    ],
    ids=["strategy", "no-user"],
)
def test_bad_arguments_are_named(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Activity.forget_user(**arguments)


def test_progress_counts_each_activity(pseudonym_key: None) -> None:
    _log()
    _log()
    seen: list[int] = []

    Activity.forget_user(USER, progress=seen.append)

    assert seen == [1, 1]


def test_a_missing_signing_key_changes_nothing(pseudonym_key: None) -> None:
    unsigned = _log()
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    _log()
    ma.configure(signing=False, signing_keys={})
    before = list(Activity._get_collection().find().sort("_id"))

    with pytest.raises(ConfigurationError):
        Activity.forget_user(USER)

    assert list(Activity._get_collection().find().sort("_id")) == before
    assert _stored(unsigned)["userId"] == USER


def test_forget_user_touches_only_the_tenant_in_context(pseudonym_key: None) -> None:
    ma.configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    with activity_context(tenant="acme"):
        ours = _log()
    with activity_context(tenant="globex"):
        theirs = _log()

    with pytest.raises(ma.TenantRequiredError):
        Activity.forget_user(USER)
    with activity_context(tenant="acme"):
        result = Activity.forget_user(USER, strategy="delete")

    assert result.deleted == 1
    raw = Activity._get_collection()
    assert raw.find_one({"_id": ours.pk}) is None
    assert raw.find_one({"_id": theirs.pk})["userId"] == USER
