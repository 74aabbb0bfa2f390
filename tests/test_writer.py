"""Manual logging with log_activity and the shared write path."""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from typing import Any

import bson
import mongoengine as me
import pytest
from bson import Binary, ObjectId
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mongoengine_activity as ma
from mongoengine_activity import (
    Activity,
    ActivityWriteError,
    TrackedDocument,
    ValidationError,
    log_activity,
    writer,
)
from mongoengine_activity._bson import digest

from .models import Customer, Order


def test_log_activity_stores_the_stored_schema() -> None:
    user = ObjectId("65f000000000000000000009")
    activity = log_activity(
        "order_shipped",
        entity=("Order", 7),
        user_id=user,
        data={"carrier": "UPS"},
        team_id="team-1",
        event_id="ship-7",
    )

    raw = Activity._get_collection().find_one()
    assert activity is not None and raw["_id"] == activity.pk
    assert {k: v for k, v in raw.items() if k not in {"_id", "createdAt"}} == {
        "userId": user,
        "entity": {"type": "Order", "id": 7},
        "type": "order_shipped",
        "meta": {"carrier": "UPS"},
        "changes": [],
        "context": {},
        "teamId": "team-1",
        "eventId": "ship-7",
    }
    assert raw["createdAt"].microsecond % 1000 == 0


@pytest.mark.parametrize(
    "entity",
    [("Order", 7), ["Order", 7], {"type": "Order", "id": 7}],
    ids=["tuple", "list", "mapping"],
)
def test_entity_forms(entity: Any) -> None:
    log_activity("order_touched", entity=entity)
    assert (Activity.objects.get().entity.type, Activity.objects.get().entity.id) == (
        "Order",
        7,
    )


def test_entity_document_uses_its_entity_type_and_sender() -> None:
    customer = Customer(name="Ann").save()
    received: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(sender)

    with ma.activity_logged.connected_to(receiver):
        log_activity("customer_called", entity=customer)

    assert received == [Customer]
    assert Activity.objects(type="customer_called").get().entity.id == customer.pk


def test_same_event_id_twice_writes_once_and_returns_the_stored_one() -> None:
    first = log_activity("paid", entity=("Order", 1), event_id="evt-1", data={"n": 1})
    second = log_activity("paid", entity=("Order", 1), event_id="evt-1", data={"n": 2})

    assert first is not None and second is not None
    assert second.pk == first.pk
    assert second.data == {"n": 1}
    assert Activity.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (
            {"type": ""},
            "type",
            r"log_activity\(\): type: String should have at least 1 character",
        ),
        ({"entity": ("Order", None)}, "entity", r"entity: the entity has no id"),
        ({"entity": 42}, "entity", r"entity: give a document, a \(type, id\) pair"),
        (
            {"entity": {"type": "Order"}},
            "entity",
            r"entity: a mapping needs exactly the keys",
        ),
        (
            {"user_id": True},
            "user_id",
            r"user_id: must be an ObjectId, a UUID, a string",
        ),
        ({"user_id": 1.5}, "user_id", r"user_id"),
        (
            {"data": {"$set": 1}},
            "data",
            r"data: data key '\$set' may not start with '\$'",
        ),
        ({"data": {"a": {"b.c": 1}}}, "data", r"data: data.a key 'b.c' may not"),
        ({"data": {"f": object()}}, "data", r"data: data cannot be stored in MongoDB"),
        ({"event_id": ""}, "event_id", r"event_id"),
        ({"changes": [{"to": 1}]}, "changes", r"changes.0.path: Field required"),
        (
            {"created_at": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)},
            "created_at",
            r"created_at: lies in the future",
        ),
    ],
    ids=[
        "empty-type",
        "no-entity-id",
        "bad-entity",
        "entity-mapping-keys",
        "bool-user",
        "float-user",
        "dollar-key",
        "dotted-key",
        "unencodable",
        "empty-event-id",
        "change-without-path",
        "future",
    ],
)
def test_bad_input_raises_naming_the_field_and_stores_nothing(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    arguments: dict[str, Any] = {"type": "order_paid", "entity": ("Order", 1), **kwargs}
    verb = arguments.pop("type")

    with pytest.raises(ValidationError, match=message) as raised:
        log_activity(verb, **arguments)

    assert raised.value.field == field
    assert Activity.objects.count() == 0


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (
            {"user_id": 2**70},
            "user_id",
            "user_id: user_id cannot be stored in MongoDB: MongoDB can only "
            "handle up to 8-byte ints",
        ),
        (
            {"user_id": b"abc"},
            "user_id",
            "user_id: must be an ObjectId, a UUID, a string, an integer or None, "
            "not bytes",
        ),
        (
            {"user_id": 1.5},
            "user_id",
            "user_id: must be an ObjectId, a UUID, a string, an integer or None, "
            "not float",
        ),
        (
            {"changes": [{"path": "a", "to": object()}]},
            "changes",
            "changes.0.to: to cannot be stored in MongoDB: Invalid document: "
            "cannot encode object",
        ),
        (
            {"changes": [{"path": "a", "from": 2**70}]},
            "changes",
            "changes.0.from: from cannot be stored in MongoDB: MongoDB can only "
            "handle up to 8-byte ints",
        ),
        (
            {"changes": {"path": "a"}},
            "changes",
            "changes: must be a list of {'path', 'from', 'to'} mappings, not dict",
        ),
        (
            {"changes": ["a"]},
            "changes",
            "changes.0: must be a {'path', 'from', 'to'} mapping, not str",
        ),
        ({"data": [1, 2]}, "data", "data: must be a mapping, not list"),
        (
            {"data": _nested(91)},
            "data",
            "data: data nests deeper than 90 levels",
        ),
        (
            {"data": _nested(5000)},
            "data",
            "data: data nests deeper than 90 levels",
        ),
        (
            {"on_error": "ignore"},
            "on_error",
            "on_error: Input should be 'log' or 'raise'",
        ),
        (
            {"created_at": "2020-01-01"},
            "created_at",
            "created_at: must be a datetime, not str",
        ),
        ({"created_at": 0}, "created_at", "created_at: must be a datetime, not int"),
        (
            {"created_at": dt.date(2020, 1, 1)},
            "created_at",
            "created_at: must be a datetime, not date",
        ),
        ({"type": "   "}, "type", "type: must not be blank"),
    ],
    ids=[
        "huge-user",
        "bytes-user",
        "float-user",
        "unencodable-change",
        "huge-change",
        "changes-mapping",
        "change-not-mapping",
        "data-list",
        "data-deep",
        "data-very-deep",
        "on-error",
        "created-at-str",
        "created-at-int",
        "created-at-date",
        "blank-type",
    ],
)
def test_bad_input_raises_exactly_and_stores_nothing(
    kwargs: dict[str, Any], field: str, message: str
) -> None:
    arguments: dict[str, Any] = {"type": "order_paid", "entity": ("Order", 1), **kwargs}
    verb = arguments.pop("type")

    with pytest.raises(ValidationError) as raised:
        log_activity(verb, **arguments)

    assert str(raised.value).startswith(f"log_activity(): {message}")
    assert raised.value.field == field
    assert Activity.objects.count() == 0


def test_deep_data_within_the_limit_is_stored() -> None:
    log_activity("deep", entity=("Order", 1), data=_nested(90))

    assert Activity.objects.get().data == _nested(90)


def test_a_uuid_user_id_is_accepted() -> None:
    user = uuid.UUID("12345678-1234-5678-1234-567812345678")
    log_activity("seen", entity=("Order", 1), user_id=user)

    assert Activity._get_collection().find_one()["userId"] == Binary.from_uuid(user)
    assert Activity.objects.get().user_id == user


def test_unsaved_document_as_entity_is_rejected() -> None:
    with pytest.raises(ValidationError, match="save the document first"):
        log_activity("order_noted", entity=Order(status="draft"))


def test_explicit_arguments_win_over_context() -> None:
    with ma.activity_context(user_id="ctx-user", team_id="ctx-team", request_id="r-1"):
        log_activity("a", entity=("T", 1))
        log_activity(
            "b",
            entity=("T", 2),
            user_id="me",
            team_id=None,
            context={"requestId": "r-2"},
        )

    a, b = Activity.objects.order_by("created_at", "id")
    assert (a.user_id, a.team_id, a.context) == (
        "ctx-user",
        "ctx-team",
        {"requestId": "r-1"},
    )
    assert (b.user_id, b.team_id, b.context) == ("me", None, {"requestId": "r-2"})


def test_manual_changes_are_stored() -> None:
    log_activity(
        "price_fixed",
        entity=("Product", 1),
        changes=[{"path": "price", "from": 1, "to": 2}],
    )
    assert Activity.objects.get().changes == [{"path": "price", "from": 1, "to": 2}]


def test_global_mask_fields_cover_data_context_and_changes() -> None:
    ma.configure(mask_fields=["password", "card.cvv"], mask_pattern="<masked>")
    log_activity(
        "user_saved",
        entity=("User", 1),
        data={"password": "hunter2", "card": {"cvv": "123", "brand": "visa"}},
        context={"password": "x"},
        changes=[{"path": "password", "from": "a", "to": "b"}],
    )

    stored = Activity._get_collection().find_one()
    assert stored["meta"] == {
        "password": "<masked>",
        "card": {"cvv": "<masked>", "brand": "visa"},
    }
    assert stored["context"] == {"password": "<masked>"}
    assert stored["changes"] == [
        {"path": "password", "from": "<masked>", "to": "<masked>"}
    ]


def test_oversized_values_are_replaced_by_a_marker() -> None:
    ma.configure(max_value_bytes=1000)
    big = "x" * 5000
    log_activity("blob_saved", entity=("Blob", 1), data={"big": big, "small": "ok"})

    stored = Activity.objects.get()
    assert stored.data["small"] == "ok"
    marker = stored.data["big"]
    assert marker["_truncated"] is True
    assert marker["size"] == 5005
    assert len(marker["sha256"]) == 64


def test_many_values_stay_within_the_activity_budget() -> None:
    ma.configure(max_value_bytes=100_000, max_activity_bytes=200_000)
    data = {f"k{n}": "y" * 60_000 for n in range(5)}
    log_activity("lots", entity=("Blob", 1), data=data)

    stored = Activity.objects.get().data
    kept = [key for key, value in stored.items() if isinstance(value, str)]
    assert len(kept) == 3
    assert stored.pop("_capped") == {"values": 2}
    assert all(stored[key]["_truncated"] for key in stored if key not in kept)


def test_tracked_save_with_a_huge_field_succeeds() -> None:
    order = Order(status="new", notes={"blob": "z" * 20_000_000}).save()

    assert order.pk is not None
    created = Activity.objects.get()
    notes = next(c for c in created.changes if c["path"] == "notes")
    assert notes["to"]["_truncated"] is True


def test_write_failure_is_logged_and_signalled_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failures: list[Any] = []

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    def on_failed(sender: Any, activity: Any, error: Exception) -> None:
        failures.append((sender, activity.type, str(error)))

    monkeypatch.setattr(Activity._get_collection(), "insert_one", broken)
    with ma.activity_failed.connected_to(on_failed), caplog.at_level(logging.WARNING):
        order = Order(status="new").save()

    assert order.pk is not None
    assert failures == [(Order, "order_created", "disk full")]
    assert (
        "could not write activity order_created for Order: RuntimeError" in caplog.text
    )


def test_on_error_raise_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(Activity._get_collection(), "insert_one", broken)
    ma.configure(on_error="raise")

    with pytest.raises(
        ActivityWriteError, match="could not write activity 'order_created'"
    ):
        Order(status="new").save()
    with pytest.raises(ActivityWriteError):
        log_activity("x", entity=("T", 1))


def test_a_deferred_context_value_is_computed_once_per_activity() -> None:
    calls: list[int] = []

    def user() -> str:
        calls.append(1)
        return "u-deferred"

    with ma.activity_context(user_id=ma.deferred(user)):
        log_activity("seen", entity=("Thing", 1))

    assert Activity.objects.get().user_id == "u-deferred"
    assert calls == [1]


_CAP_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.integers(-(2**31), 2**31),
        st.text(max_size=40),
        st.binary(max_size=40),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text("abc", max_size=2), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@example(  # 80 scalars
    changes=[], data={f"k{n}": None for n in range(80)}, value_cap=2000, total_cap=1500
)
@given(
    changes=st.lists(st.tuples(_CAP_VALUES, _CAP_VALUES), max_size=40),
    data=st.dictionaries(st.text("abcdefghij", max_size=2), _CAP_VALUES, max_size=90),
    value_cap=st.integers(1, 2000),
    # Three folded fields and data as a marker always fit in 1500 bytes.
    total_cap=st.integers(1500, 2500),
)
def test_a_capped_activity_fits_its_budget(
    changes: list[tuple[Any, Any]],
    data: dict[str, Any],
    value_cap: int,
    total_cap: int,
) -> None:
    settings_ = ma.Settings(max_value_bytes=value_cap, max_activity_bytes=total_cap)
    son = writer.build_son(
        type="t",
        entity_type="T",
        entity_id=1,
        data=data,
        changes=[
            {"path": f"f{n % 3}.{n}", "from": old, "to": new}
            for n, (old, new) in enumerate(changes)
        ],
    )
    before = copy.deepcopy(son)
    writer._cap_sizes(son, settings_)

    # 17 bytes for the _id the insert adds.
    assert len(bson.encode(son)) + 17 <= total_cap
    if len(bson.encode(before)) + writer._RESERVED_BYTES <= min(value_cap, total_cap):
        assert son == before


def _marker(value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "_truncated": True,
        **extra,
        "size": len(bson.encode({"v": value})) - 8,
        "sha256": digest(value),
    }


def test_many_small_values_fold_data_into_one_marker() -> None:
    ma.configure(max_activity_bytes=2000, max_value_bytes=1500)
    data = {f"k{n}": "v" * 100 for n in range(50)}

    log_activity("x", entity=("X", 1), data=data)

    stored = Activity._get_collection().find_one()
    assert stored["meta"] == {**_marker(data), "_capped": {"values": 1}}
    assert len(bson.encode(stored)) == 259


def test_a_marker_never_replaces_a_smaller_value() -> None:
    ma.configure(max_value_bytes=1)
    log_activity("x", entity=("X", 1), data={"a": "x" * 50, "b": "y" * 200})

    assert Activity._get_collection().find_one()["meta"] == {
        "a": "x" * 50,
        "b": _marker("y" * 200),
        "_capped": {"values": 1},
    }


class Counters(TrackedDocument):
    counts = me.ListField(me.IntField())
    label = me.StringField()


def test_changes_under_one_field_fold_into_one_change() -> None:
    counters = Counters(counts=list(range(3000)), label="c").save()
    ma.configure(max_activity_bytes=4096)
    counters.counts = [n + 1 for n in range(3000)]
    counters.label = "d"
    counters.save()

    stored = Activity._get_collection().find_one({"type": "counters_updated"})
    assert stored["changes"] == [
        {
            "path": "counts",
            "from": _marker(list(range(3000)), changes=3000),
            "to": _marker([n + 1 for n in range(3000)], changes=3000),
        },
        {"path": "label", "from": "c", "to": "d"},
    ]
    assert stored["meta"] == {"_capped": {"changes": 3000}}
    assert len(bson.encode(stored)) == 507


def test_an_activity_that_cannot_fit_is_a_failed_write() -> None:
    ma.configure(max_activity_bytes=2000)
    failures: list[str] = []

    def on_failed(sender: Any, activity: Any, error: Exception) -> None:
        failures.append(str(error))

    with ma.activity_failed.connected_to(on_failed):
        result = log_activity("x", entity=("X", 1), context={"note": "n" * 3000})

    assert result is None
    assert failures == [
        "the activity takes 3127 bytes, over max_activity_bytes (2000), even "
        "with its values replaced"
    ]
    assert Activity.objects.count() == 0


@pytest.mark.parametrize("keys", [50, 200, 5000], ids=["50", "200", "5000"])
def test_a_signed_activity_fits_its_budget_signature_included(keys: int) -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"}, max_activity_bytes=8192)
    log_activity("many", entity=("Thing", 1), data={f"k{n}": n for n in range(keys)})

    raw = Activity._get_collection().find_one()
    assert len(bson.encode(raw)) <= 8192
    assert Activity.objects.get().verify_integrity().ok
