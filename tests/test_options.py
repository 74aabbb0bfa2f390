"""meta["activity"] and configure() validation."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import mongoengine as me
import pytest

import mongoengine_activity as ma
from mongoengine_activity import Activity, ConfigurationError, TrackedDocument, options
from mongoengine_activity.durations import parse_duration


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"exclud": ["a"]},
            r"Bad\.meta\['activity'\]: option 'exclud': unknown option",
        ),
        ({"ttl": "ninety days"}, r"option 'ttl': ttl 'ninety days' is not a duration"),
        ({"ttl": -5}, r"option 'ttl': ttl must be positive"),
        (
            {"exclude": "updated_at"},
            r"option 'exclude': must be a list of dotted paths",
        ),
        (
            {"on_error": "ignore"},
            r"option 'on_error': Input should be 'log' or 'raise'",
        ),
        ({"rate_limit": {"max_per_minute": 0}}, r"option 'rate_limit.max_per_minute'"),
        ({"types": {"create": ""}}, r"option 'types.create'"),
        ({"tenant_isolation": "loose"}, r"option 'tenant_isolation'"),
    ],
    ids=[
        "typo",
        "bad-duration",
        "negative-ttl",
        "string-list",
        "on-error",
        "rate",
        "verb",
        "isolation",
    ],
)
def test_bad_class_options_name_class_and_option(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):

        class Bad(TrackedDocument):
            name = me.StringField()
            meta = {"activity": options}


def test_meta_activity_must_be_a_dict() -> None:
    with pytest.raises(ConfigurationError, match=r"meta\['activity'\] must be a dict"):

        class Bad(TrackedDocument):
            meta = {"activity": ["exclude"]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90d", dt.timedelta(days=90)),
        ("12h", dt.timedelta(hours=12)),
        ("1m", dt.timedelta(minutes=1)),
        ("30s", dt.timedelta(seconds=30)),
        ("2w", dt.timedelta(weeks=2)),
        ("500ms", dt.timedelta(milliseconds=500)),
        (3600, dt.timedelta(hours=1)),
        (dt.timedelta(days=1), dt.timedelta(days=1)),
    ],
    ids=["days", "hours", "minutes", "seconds", "weeks", "ms", "int", "timedelta"],
)
def test_durations(value: object, expected: dt.timedelta) -> None:
    assert parse_duration(value) == expected


def test_ttl_sets_expires_at() -> None:
    class Session(TrackedDocument):
        name = me.StringField()
        meta = {"activity": {"ttl": "90d"}}

    Session(name="s").save()

    activity = Activity.objects.get()
    assert activity.expires_at - activity.created_at == dt.timedelta(days=90)


def test_configure_rejects_unknown_and_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting 'colection'"):
        ma.configure(colection="x")
    with pytest.raises(ConfigurationError, match=r"option 'max_value_bytes'"):
        ma.configure(max_value_bytes=0)
    assert ma.current_settings().collection == "activities"


def test_configure_defaults_apply_to_every_model_and_meta_wins() -> None:
    class Note(TrackedDocument):
        text = me.StringField()
        meta = {"activity": {"mask_pattern": "[hidden]"}}

    ma.configure(mask_fields=[], ttl="1h", on_error="raise")

    options = Note.activity_options()
    assert options.ttl == dt.timedelta(hours=1)
    assert options.on_error == "raise"
    assert options.mask_pattern == "[hidden]"


def test_configure_collection_moves_the_log() -> None:
    ma.configure(collection="audit_log")

    ma.log_activity("moved", entity=("Thing", 1))

    assert Activity._get_collection().name == "audit_log"
    assert Activity.objects.count() == 1
    ma.configure(reset=True)
    assert Activity._get_collection().name == "activities"
    assert Activity.objects.count() == 0


def test_signing_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_SIGNING_KEYS", "k1:secret,k0:old")
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_SIGNING_KEY_ID", "k1")

    settings = ma.configure(reset=True)

    assert {k: v.get_secret_value() for k, v in settings.signing_keys.items()} == {
        "k1": b"secret",
        "k0": b"old",
    }
    assert settings.signing_key_id == "k1"
    assert "secret" not in repr(settings)


def test_malformed_signing_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_SIGNING_KEYS", "k1=secret")

    with pytest.raises(ConfigurationError, match="signing keys are written as"):
        ma.configure(reset=True)


def test_collection_from_the_environment_is_used_without_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_COLLECTION", "audit_log")
    monkeypatch.setattr(options, "_settings", None)

    assert Activity.objects.count() == 0
    ma.log_activity("invoice_sent", entity=("Invoice", 1))

    database = me.get_db()
    assert database["audit_log"].count_documents({}) == 1
    assert database["activities"].count_documents({}) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"mask_fields": ["card.numbr", "cardd.number"]},
            r"Typo\.meta\['activity'\]: option 'mask_fields': 'cardd\.number' names no "
            r"field of Typo; declared fields are card, id, name",
        ),
        ({"exclude": ["nam"]}, r"option 'exclude': 'nam' names no field"),
        ({"track": ["name", "colour"]}, r"option 'track': 'colour' names no field"),
        ({"user_field": "owner"}, r"option 'user_field': 'owner' names no field"),
        ({"team_field": "team"}, r"option 'team_field': 'team' names no field"),
    ],
    ids=["mask", "exclude", "track", "user-field", "team-field"],
)
def test_option_paths_must_name_declared_fields(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):

        class Typo(TrackedDocument):
            name = me.StringField()
            card = me.DictField()
            meta = {"activity": options}


class _Where(me.EmbeddedDocument):
    city = me.StringField(db_field="c")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"mask_fields": ["cc.number"]},
            r"Stored\.meta\['activity'\]: option 'mask_fields': 'cc\.number' uses "
            r"the stored name 'cc'; use the attribute name 'card', not the stored "
            r"name 'cc'",
        ),
        (
            {"exclude": ["s"]},
            r"option 'exclude': 's' uses the stored name 's'; use the attribute "
            r"name 'secret'",
        ),
        (
            {"track": ["st"]},
            r"option 'track': 'st' uses the stored name 'st'; use the attribute "
            r"name 'status'",
        ),
        (
            {"mask_fields": ["where.c"]},
            r"option 'mask_fields': 'where\.c' uses the stored name 'c'; use the "
            r"attribute name 'city'",
        ),
        (
            {"exclude": ["places.home.c"]},
            r"option 'exclude': 'places\.home\.c' uses the stored name 'c'; use "
            r"the attribute name 'city'",
        ),
    ],
    ids=["mask", "exclude", "track", "embedded", "map-of-embedded"],
)
def test_option_paths_by_stored_name_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):

        class Stored(TrackedDocument):
            card = me.DictField(db_field="cc")
            secret = me.StringField(db_field="s")
            status = me.StringField(db_field="st")
            where = me.EmbeddedDocumentField(_Where, db_field="w")
            places = me.MapField(me.EmbeddedDocumentField(_Where))
            meta = {"activity": options}


def test_option_paths_by_attribute_name_behind_stored_names_are_accepted() -> None:
    class Renamed(TrackedDocument):
        card = me.DictField(db_field="cc")
        where = me.EmbeddedDocumentField(_Where, db_field="w")
        places = me.MapField(me.EmbeddedDocumentField(_Where))
        meta = {
            "activity": {
                "mask_fields": ["card.number", "where.city", "places.home.city"],
                "mask_pattern": "###",
            }
        }

    renamed = Renamed(
        card={"number": "4111"},
        where=_Where(city="Oslo"),
        places={"home": _Where(city="Rome")},
    ).save()
    renamed = Renamed.objects.get(pk=renamed.pk)
    renamed.card["number"] = "4222"
    renamed.where.city = "Bergen"
    renamed.places["home"].city = "Pisa"
    renamed.save()

    assert [a.changes for a in Activity.objects.order_by("created_at", "id")] == [
        [
            {"path": "card", "from": None, "to": {"number": "###"}},
            {"path": "where", "from": None, "to": {"c": "###"}},
            {"path": "places", "from": None, "to": {"home": {"c": "###"}}},
        ],
        [
            {"path": "card.number", "from": "###", "to": "###"},
            {"path": "where.city", "from": "###", "to": "###"},
            {"path": "places.home.city", "from": "###", "to": "###"},
        ],
    ]


def test_abstract_bases_may_name_fields_their_subclasses_declare() -> None:
    class Authored(TrackedDocument):
        meta = {"abstract": True, "activity": {"user_field": "author"}}

    class Post(Authored):
        author = me.StringField()

    Post(author="ann").save()
    assert Activity.objects.get().user_id == "ann"


_STORED = [
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
]


_ATTRIBUTES = ["id", "pk", "user_id", "data", "tenant", "entityType"]


@pytest.mark.parametrize("name", _STORED + _ATTRIBUTES, ids=_STORED + _ATTRIBUTES)
def test_tenant_field_may_not_be_an_activity_field(name: str) -> None:
    message = (
        rf"configure\(\): option 'defaults.tenant_field': '{re.escape(name)}' is "
        "a name every activity already uses"
    )
    with pytest.raises(ConfigurationError, match=message):
        ma.configure(multi_tenant=True, tenant_field=name)
    with pytest.raises(
        ConfigurationError,
        match=rf"Clash\.meta\['activity'\]: option 'tenant_field': '{name}' is a",
    ):

        class Clash(TrackedDocument):
            meta = {"activity": {"multi_tenant": True, "tenant_field": name}}

    assert ma.current_settings().defaults == {}


@pytest.mark.parametrize(
    "name", ["org.id", "$tenant", "ten\x00ant"], ids=["dotted", "dollar", "nul"]
)
def test_tenant_field_must_be_a_plain_top_level_name(name: str) -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"option 'defaults.tenant_field': .* is not a plain top-level field",
    ):
        ma.configure(multi_tenant=True, tenant_field=name)


def test_tenant_field_stored_names_match_the_activity_model() -> None:
    stored = {field.db_field for field in Activity._fields.values()}

    assert stored == options.ACTIVITY_STORED_NAMES
    assert set(Activity._fields) - {"entity", "type", "changes", "context"} <= (
        options.ACTIVITY_ATTRIBUTE_NAMES
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1e308, r"option 'defaults.ttl': ttl 1e\+308 is out of range"),
        ("99999999999w", r"option 'defaults.ttl': ttl '99999999999w' is out of range"),
        (float("inf"), r"option 'defaults.ttl': ttl inf is out of range"),
        ("999999999d", r"ttl '999999999d' is out of range \(at most 1000 years\)"),
        (10**12, r"ttl 1000000000000 is out of range"),
    ],
    ids=["huge-float", "huge-string", "infinite", "past-year-9999", "seconds"],
)
def test_configure_refuses_out_of_range_durations(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ma.configure(ttl=value)
    assert ma.current_settings().defaults == {}


@pytest.mark.parametrize(
    ("setting", "name", "message"),
    [
        ("collection", "$bad", r"option 'collection': .*may not contain '\$'"),
        ("collection", "a\x00b", r"option 'collection': .*may not contain '\$' or NUL"),
        ("collection", "", r"option 'collection': String should have at least 1"),
        ("collection", "system.log", r"option 'collection': .*'system\.'"),
        ("archive_collection", "arch$", r"option 'archive_collection': .*'\$'"),
        ("chain_collection", "system.x", r"option 'chain_collection': .*'system\.'"),
    ],
    ids=["dollar", "nul", "empty", "system", "archive-dollar", "chain-system"],
)
def test_configure_refuses_invalid_collection_names(
    setting: str, name: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ma.configure(**{setting: name})
    assert ma.current_settings().collection == "activities"


def test_a_ttl_of_a_thousand_years_still_saves() -> None:
    class Archive(TrackedDocument):
        name = me.StringField()
        meta = {"activity": {"ttl": "365250d"}}

    Archive(name="kept").save()

    activity = Activity.objects.get()
    assert activity.expires_at - activity.created_at == dt.timedelta(days=365_250)
