"""Signing on the write path: keys, rotation, streams and the chain head."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import mongoengine as me
import pytest
from bson import ObjectId

import mongoengine_activity as ma
from mongoengine_activity import (
    Activity,
    ActivityWriteError,
    TrackedDocument,
    activity_context,
    log_activity,
)
from mongoengine_activity import signing as signing_module
from mongoengine_activity.signing import chain_collection

from .models import Customer


class SignedInvoice(TrackedDocument):
    number = me.StringField()

    meta = {"activity": {"signing": True}}


class TenantNote(TrackedDocument):
    text = me.StringField()

    meta = {"activity": {"signing": True}}


@pytest.fixture
def keys() -> Iterator[None]:
    ma.configure(signing_keys={"k1": b"first secret"}, signing_key_id="k1")
    yield


def _raw(activity: Activity | None) -> dict[str, Any]:
    assert activity is not None
    found = Activity._get_collection().find_one({"_id": activity.pk})
    assert found is not None
    return found


def test_activities_are_unsigned_by_default() -> None:
    activity = log_activity("order_shipped", entity=("Order", 1))

    assert "sig" not in _raw(activity)
    assert activity is not None and activity.verify_integrity().reason == "unsigned"


def test_configure_signing_signs_every_activity(keys: None) -> None:
    ma.configure(signing=True)

    raw = _raw(log_activity("order_shipped", entity=("Order", 1), user_id=5))

    sig = raw["sig"]
    assert {key: sig[key] for key in ("v", "kid", "alg", "seq", "prev")} == {
        "v": 1,
        "kid": "k1",
        "alg": "HMAC-SHA256",
        "seq": 1,
        "prev": None,
    }
    assert sorted(unit["n"] for unit in sig["units"]) == [
        "_id",
        "changes",
        "context",
        "createdAt",
        "entity",
        "meta",
        "type",
        "userId",
    ]
    assert all(len(unit["s"]) == 32 and len(unit["d"]) == 64 for unit in sig["units"])
    assert len(sig["mac"]) == 64


def test_a_model_opts_in_with_its_meta(keys: None) -> None:
    invoice = SignedInvoice(number="A-1")
    invoice.save()
    Customer(name="Ann").save()

    signed = Activity._get_collection().find_one({"entity.type": "SignedInvoice"})
    unsigned = Activity._get_collection().find_one({"entity.type": "Customer"})

    assert signed is not None and signed["sig"]["kid"] == "k1"
    assert unsigned is not None and "sig" not in unsigned


def test_each_entity_is_its_own_stream(keys: None) -> None:
    ma.configure(signing=True)
    first = [_raw(log_activity("a", entity=("Order", 1))) for _ in range(3)]
    other = _raw(log_activity("a", entity=("Order", 2)))

    assert [raw["sig"]["seq"] for raw in first] == [1, 2, 3]
    assert len({raw["sig"]["stream"] for raw in first}) == 1
    assert other["sig"]["seq"] == 1
    assert other["sig"]["stream"] != first[0]["sig"]["stream"]
    assert first[1]["sig"]["prev"] == ma._canonical.chain_link(first[0]["sig"]["mac"])
    head = chain_collection(ma.current_settings()).find_one(
        {"_id": first[0]["sig"]["stream"]}
    )
    assert head is not None and head["seq"] == 3


def test_with_multi_tenancy_each_tenant_is_one_stream(keys: None) -> None:
    ma.configure(
        signing=True,
        multi_tenant=True,
        tenant_field="tenantId",
        tenant_isolation="soft",
    )
    with activity_context(tenant="acme"):
        TenantNote(text="a").save()
        TenantNote(text="b").save()
    with activity_context(tenant="globex"):
        TenantNote(text="c").save()
        log_activity("manual", entity=("Order", 1), on_error="raise")

    sigs = [raw["sig"] for raw in Activity._get_collection().find({}).sort("_id", 1)]
    assert [sig["seq"] for sig in sigs] == [1, 2, 1, 2]
    assert sigs[0]["stream"] == sigs[1]["stream"] != sigs[2]["stream"]
    assert sigs[2]["stream"] == sigs[3]["stream"]


def test_signing_without_a_key_fails_the_write() -> None:
    ma.configure(signing=True)

    with pytest.raises(ActivityWriteError, match="no signing key is configured"):
        log_activity("a", entity=("Order", 1), on_error="raise")
    assert Activity.objects.count() == 0


def test_an_unknown_signing_key_id_is_named() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"x"}, signing_key_id="k9")

    with pytest.raises(ActivityWriteError, match="signing_key_id 'k9' is not among"):
        log_activity("a", entity=("Order", 1), on_error="raise")


def test_the_first_environment_key_signs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_SIGNING_KEYS", "k1:secret,k0:old")
    monkeypatch.setenv("MONGOENGINE_ACTIVITY_SIGNING", "true")
    ma.configure(reset=True)

    raw = _raw(log_activity("a", entity=("Order", 1)))

    assert raw["sig"]["kid"] == "k1"


def test_key_rotation_old_keys_verify_and_the_new_key_signs() -> None:
    ma.configure(signing=True, signing_keys={"k0": b"old"}, signing_key_id="k0")
    old = log_activity("a", entity=("Order", 1))
    ma.configure(signing_keys={"k1": b"new", "k0": b"old"}, signing_key_id="k1")
    new = log_activity("a", entity=("Order", 1))

    assert old is not None and new is not None
    assert (old.verify_integrity().key_id, new.verify_integrity().key_id) == (
        "k0",
        "k1",
    )
    assert old.verify_integrity().ok and new.verify_integrity().ok
    assert Activity.objects.verify_chain().ok

    ma.configure(signing_keys={"k1": b"new"})
    assert old.verify_integrity().reason == "unknown key"
    assert new.verify_integrity().ok


def test_a_wrong_secret_under_the_same_key_id_fails() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"right"})
    activity = log_activity("a", entity=("Order", 1))
    ma.configure(signing_keys={"k1": b"wrong"})

    assert activity is not None
    result = activity.verify_integrity()
    assert (result.ok, result.reason, result.fields) == (
        False,
        "bad signature",
        ("sig",),
    )


def test_a_repeated_event_id_leaves_the_chain_unbroken(keys: None) -> None:
    ma.configure(signing=True)
    first = log_activity("a", entity=("Order", 1), event_id="e-1")
    again = log_activity("a", entity=("Order", 1), event_id="e-1")
    log_activity("a", entity=("Order", 1))

    assert first is not None and again is not None and again.pk == first.pk
    assert [raw["sig"]["seq"] for raw in Activity._get_collection().find()] == [1, 2]
    assert Activity.objects.verify_chain().ok


class _RacingChains:
    """A chain collection where another writer appends between read and swap."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = True
            log_activity("racer", entity=("Order", 1), on_error="raise")
        return self.real.find_one_and_update(*args, **kwargs)


def test_a_writer_that_loses_the_race_retries_instead_of_forking(
    keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ma.configure(signing=True)
    log_activity("a", entity=("Order", 1))
    real = signing_module.chain_collection
    racing = _RacingChains(real(ma.current_settings()))
    monkeypatch.setattr(
        signing_module,
        "chain_collection",
        lambda settings: racing if not racing.raced else real(settings),
    )

    log_activity("b", entity=("Order", 1), on_error="raise")

    order = [
        (raw["type"], raw["sig"]["seq"])
        for raw in Activity._get_collection().find().sort("sig.seq", 1)
    ]
    assert order == [("a", 1), ("racer", 2), ("b", 3)]
    assert Activity.objects.verify_chain().ok


def test_threads_appending_to_one_stream_never_fork(
    keys: None, monkeypatch: pytest.MonkeyPatch, on_server: bool
) -> None:
    ma.configure(signing=True)
    errors: list[BaseException] = []
    if not on_server:
        # A server applies find_one_and_update atomically; mongomock finds and
        # then updates, so give it the server's atomicity.
        chains = chain_collection(ma.current_settings())
        swap = chains.find_one_and_update
        lock = threading.Lock()

        def atomic(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return swap(*args, **kwargs)

        monkeypatch.setattr(chains, "find_one_and_update", atomic)

    def write() -> None:
        try:
            for _ in range(10):
                log_activity("a", entity=("Order", 1), on_error="raise")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    seqs = sorted(raw["sig"]["seq"] for raw in Activity._get_collection().find())
    assert seqs == list(range(1, 41))
    assert Activity.objects.verify_chain().ok


def test_a_failed_insert_rolls_the_chain_head_back(
    keys: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ma.configure(signing=True)
    log_activity("a", entity=("Order", 1))
    collection = Activity._get_collection()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("network down")

    monkeypatch.setattr(collection, "insert_one", refuse)
    assert log_activity("b", entity=("Order", 1)) is None
    monkeypatch.undo()
    log_activity("c", entity=("Order", 1))

    assert [raw["sig"]["seq"] for raw in collection.find().sort("sig.seq", 1)] == [1, 2]
    assert Activity.objects.verify_chain().ok


def test_the_signed_id_is_the_stored_id(keys: None) -> None:
    ma.configure(signing=True)
    activity = log_activity("a", entity=("Order", ObjectId()))

    assert activity is not None and isinstance(activity.pk, ObjectId)
    assert activity.verify_integrity().ok
