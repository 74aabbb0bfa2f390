"""Multi-tenancy: tenants on writes, scoped reads, per-tenant event ids."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import mongoengine as me
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mongoengine_activity as ma
from mongoengine_activity import (
    ALL_TENANTS,
    Activity,
    ActivityWriteError,
    ConfigurationError,
    TenantRequiredError,
    TrackedDocument,
    TrackedDynamicDocument,
    ValidationError,
    activity_context,
    before_log,
    configure,
    ensure_tenant_indexes,
    log_activity,
    tenancy,
)
from mongoengine_activity.context import deferred

from .conftest import restore_activity_indexes

FIELD = "organizationId"
NO_TENANT = "reading activities needs a tenant: multi-tenancy is on"
EMPTY = "an empty, None or zero tenant never means all tenants"


class Invoice(TrackedDocument):
    """Holds its tenant in the field named like the tenant field."""

    number = me.StringField()
    organization = me.StringField(db_field=FIELD)


class Note(TrackedDocument):
    """Holds no tenant: its activities take the context's."""

    text = me.StringField()


class Memo(TrackedDynamicDocument):
    """May hold its tenant in an undeclared field."""

    text = me.StringField()


@pytest.fixture
def declared() -> Iterator[list[type[Any]]]:
    """Models a test declares with tenant options; forgotten afterwards."""
    models: list[type[Any]] = []
    yield models
    # Tenants may share event ids: empty the log before the global index returns.
    Activity._get_collection().delete_many({})
    for model in models:
        tenancy.forget_tenant_model(model)
    configure(reset=True)
    restore_activity_indexes()


@pytest.fixture
def tenants(declared: list[type[Any]]) -> None:
    """Strict multi-tenancy on ``organizationId`` with its indexes."""
    configure(multi_tenant=True, tenant_field=FIELD)
    ensure_tenant_indexes()


def stored() -> list[dict[str, Any]]:
    """Every stored activity, read past the tenancy layer."""
    return list(Activity._get_collection().find({}, sort=[("_id", 1)]))


def log_for(tenant: Any, type_: str = "note_added", **kwargs: Any) -> Activity:
    with activity_context(tenant=tenant):
        activity = log_activity(type_, entity=("Note", 1), **kwargs)
    assert activity is not None
    return activity


# --- every read path, run the same way in the tests below

READS: dict[str, Callable[[], Any]] = {
    "iterate": lambda: list(Activity.objects),
    "filter": lambda: list(Activity.objects.filter(type="note_added")),
    "count": lambda: Activity.objects.count(),
    "len": lambda: len(Activity.objects.all()),
    "bool": lambda: bool(Activity.objects.all()),
    "first": lambda: Activity.objects.first(),
    "get": lambda: Activity.objects.get(type="only"),
    "slice": lambda: list(Activity.objects[0:5]),
    "distinct": lambda: Activity.objects.distinct("type"),
    "aggregate": lambda: list(
        Activity.objects.aggregate([{"$project": {FIELD: 1, "type": 1}}])
    ),
    "as_pymongo": lambda: list(Activity.objects.as_pymongo()),
    "scalar": lambda: list(Activity.objects.scalar("type")),
    "values_list": lambda: list(Activity.objects.values_list("type")),
    "order_by": lambda: list(Activity.objects.order_by("-created_at").limit(3)),
    "in_bulk": lambda: Activity.objects.in_bulk([ObjectId()]),
    "with_id": lambda: Activity.objects.with_id(ObjectId()),
    "raw": lambda: list(Activity.objects(__raw__={"entity.type": "Note"})),
    "update": lambda: Activity.objects.update(set__type="x"),
    "update_one": lambda: Activity.objects.update_one(set__type="x"),
    "modify": lambda: Activity.objects(type="only").modify(set__type="x"),
    "delete": lambda: Activity.objects.delete(),
    "tenant_filter": lambda: Activity.objects.tenant_filter(),
    "no_cache": lambda: list(Activity.objects.no_cache()),
    "no_cache_count": lambda: Activity.objects.no_cache().count(),
    "cache_again": lambda: list(Activity.objects.no_cache().cache()),
    "scoped_reload": lambda: Activity.objects.all_tenants().first().reload(),
}


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_strict_read_without_tenant_raises(tenants: None, read: Any) -> None:
    log_for("acme", "only")

    with pytest.raises(TenantRequiredError, match=NO_TENANT) as raised:
        read()

    assert raised.value.field == FIELD
    assert [son["type"] for son in stored()] == ["only"]


def tenants_in(result: Any) -> set[Any]:
    """The tenants of whatever activities a read returned."""
    if isinstance(result, Activity):
        return {result.tenant}
    if isinstance(result, dict) and FIELD in result:
        return {result[FIELD]}
    if isinstance(result, dict):
        return set().union(*(tenants_in(item) for item in result.values()))
    if isinstance(result, list):
        return set().union(*(tenants_in(item) for item in result))

    return set()


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
def test_strict_read_with_tenant_sees_only_that_tenant(
    tenants: None, read: Any
) -> None:
    log_for("acme", "only")
    log_for("globex", "only")
    log_for("globex", "note_added")
    others = [son for son in stored() if son[FIELD] == "globex"]

    with activity_context(tenant="acme"):
        result = read()

    assert [son for son in stored() if son[FIELD] == "globex"] == others
    assert tenants_in(result) <= {"acme"}
    if isinstance(result, int) and not isinstance(result, bool):
        assert result <= 1  # a count, or documents updated or deleted: acme's one


@pytest.mark.parametrize(
    "tenant",
    [None, "", "   ", 0, False],
    ids=["none", "empty", "blank", "zero", "false"],
)
@pytest.mark.parametrize("isolation", ["strict", "soft"])
def test_empty_tenant_on_a_read_raises(
    declared: list[type[Any]], tenant: Any, isolation: str
) -> None:
    configure(multi_tenant=True, tenant_field=FIELD, tenant_isolation=isolation)

    with (
        activity_context(tenant=tenant),
        pytest.raises(TenantRequiredError, match=f"got {tenant!r}; {EMPTY}"),
    ):
        Activity.objects.count()


@pytest.mark.parametrize(
    "tenant",
    [None, "", "   ", 0, False],
    ids=["none", "empty", "blank", "zero", "false"],
)
def test_empty_tenant_on_a_write_raises_and_stores_nothing(
    tenants: None, tenant: Any
) -> None:
    with pytest.raises(
        TenantRequiredError,
        match=(
            f"activity 'note_added' for Note needs a tenant \\(field "
            f"'{FIELD}'\\), got {tenant!r}; {EMPTY}"
        ),
    ) as raised:
        log_for(tenant)

    assert raised.value.field == FIELD
    assert stored() == []


def test_write_without_tenant_in_context_raises(tenants: None) -> None:
    with pytest.raises(TenantRequiredError, match=f"field '{FIELD}'\\), got None"):
        log_activity("note_added", entity=("Note", 1), on_error="log")

    assert stored() == []


@pytest.mark.parametrize(
    "tenant",
    [1.5, ["acme"], {"id": "acme"}, True],
    ids=["float", "list", "dict", "bool"],
)
def test_tenant_of_an_unsupported_type_raises(tenants: None, tenant: Any) -> None:
    with pytest.raises(ValidationError, match="a tenant \\(field 'organizationId'\\)"):
        log_for(tenant)

    assert stored() == []


@pytest.mark.parametrize(
    "tenant", ["acme", 7, -1, ObjectId("5f0000000000000000000001")], ids=str
)
def test_tenant_values_are_stored_as_given(tenants: None, tenant: Any) -> None:
    activity = log_for(tenant)

    assert activity.tenant == tenant
    assert [son[FIELD] for son in stored()] == [tenant]


def test_all_tenants_is_refused_on_a_write(tenants: None) -> None:
    with pytest.raises(TenantRequiredError, match="ALL_TENANTS selects every tenant"):
        log_for(ALL_TENANTS)

    assert stored() == []


# --- tracked documents


def test_tracked_save_takes_the_tenant_from_the_document(tenants: None) -> None:
    invoice = Invoice(number="1", organization="acme").save()

    [son] = stored()
    assert son[FIELD] == "acme"
    assert son["entity"] == {"type": "Invoice", "id": invoice.pk}


def test_tracked_save_takes_the_tenant_from_the_context(tenants: None) -> None:
    with activity_context(tenant="acme"):
        Note(text="hi").save()

    assert [son[FIELD] for son in stored()] == ["acme"]


def test_document_tenant_wins_over_the_context(
    tenants: None, caplog: pytest.LogCaptureFixture
) -> None:
    with activity_context(tenant="globex"), caplog.at_level(logging.WARNING):
        Invoice(number="1", organization="acme").save()

    assert [son[FIELD] for son in stored()] == ["acme"]
    assert "the document's tenant differs from the context's" in caplog.text
    assert "globex" not in caplog.text


def test_tracked_save_without_tenant_raises_before_saving(tenants: None) -> None:
    with pytest.raises(
        TenantRequiredError, match=f"Note.save\\(\\) needs a tenant \\(field '{FIELD}'"
    ):
        Note(text="hi").save()

    assert Note.objects.count() == 0
    assert stored() == []


def test_tracked_delete_without_tenant_raises_before_deleting(tenants: None) -> None:
    with activity_context(tenant="acme"):
        note = Note(text="hi").save()

    with pytest.raises(TenantRequiredError, match=r"Note.delete\(\) needs a tenant"):
        note.delete()

    assert Note.objects.count() == 1
    assert [son["type"] for son in stored()] == ["note_created"]


def test_dynamic_document_gives_its_undeclared_tenant_field(tenants: None) -> None:
    Memo(text="hi", organizationId="acme").save()

    assert [son[FIELD] for son in stored()] == ["acme"]


def test_bulk_insert_without_tenant_raises_before_inserting(tenants: None) -> None:
    with pytest.raises(
        TenantRequiredError, match=r"Invoice.objects.insert\(\) needs a tenant"
    ):
        Invoice.objects.insert([Invoice(organization="acme"), Invoice(number="2")])

    assert Invoice.objects.count() == 0
    assert stored() == []


def test_bulk_insert_takes_each_documents_tenant(tenants: None) -> None:
    Invoice.objects.insert([Invoice(organization="acme"), Invoice(organization="b")])

    assert [son[FIELD] for son in stored()] == ["acme", "b"]


def test_untracked_save_needs_no_tenant(tenants: None) -> None:
    Note(text="hi").save(track=False)

    assert Note.objects.count() == 1
    assert stored() == []


def test_manual_log_of_a_document_takes_its_tenant(tenants: None) -> None:
    invoice = Invoice(number="1", organization="acme").save(track=False)

    activity = log_activity("invoice_sent", entity=invoice)

    assert activity is not None
    assert activity.tenant == "acme"


def test_before_log_receiver_cannot_move_an_activity(tenants: None) -> None:
    def retarget(sender: Any, activity: Activity, **_: Any) -> None:
        activity._data[FIELD] = "globex"

    before_log.connect(retarget)
    try:
        log_for("acme")
    finally:
        before_log.disconnect(retarget)

    assert [son[FIELD] for son in stored()] == ["acme"]


# --- event ids


def test_event_id_is_unique_per_tenant(tenants: None) -> None:
    first = log_for("acme", event_id="evt-1")
    again = log_for("acme", event_id="evt-1")
    other = log_for("globex", event_id="evt-1")

    assert again.id == first.id
    assert other.id != first.id
    assert [(son[FIELD], son["eventId"]) for son in stored()] == [
        ("acme", "evt-1"),
        ("globex", "evt-1"),
    ]


def test_event_id_of_another_tenant_under_the_global_index_explains(
    tenants: None,
) -> None:
    Activity.ensure_indexes()
    Activity._get_collection().create_index(
        [("eventId", 1)],
        name="eventId_unique",
        unique=True,
        partialFilterExpression={"eventId": {"$type": "string"}},
    )
    log_for("acme", event_id="evt-1")

    with pytest.raises(ActivityWriteError, match=r"call mongoengine_activity\.ensure"):
        log_for("globex", event_id="evt-1", on_error="raise")

    assert [son[FIELD] for son in stored()] == ["acme"]


def test_ensure_tenant_indexes_prefixes_feed_indexes(tenants: None) -> None:
    names = ensure_tenant_indexes()

    info = Activity._get_collection().index_information()
    assert names == [
        "organizationId_userId_createdAt",
        "organizationId_entity_createdAt",
        "organizationId_entityType_createdAt",
        "organizationId_type_createdAt",
        "organizationId_teamId_createdAt",
        "organizationId_createdAt",
        "organizationId_eventId_unique",
    ]
    assert set(names) <= set(info)
    assert "eventId_unique" not in info
    assert info["organizationId_userId_createdAt"]["key"] == [
        (FIELD, 1),
        ("userId", 1),
        ("createdAt", -1),
        ("_id", -1),
    ]
    assert info["organizationId_eventId_unique"]["unique"] is True


def test_ensure_tenant_indexes_needs_multi_tenancy() -> None:
    with pytest.raises(ConfigurationError, match="multi-tenancy is off"):
        ensure_tenant_indexes()


def test_turning_tenancy_off_brings_the_global_index_back(tenants: None) -> None:
    configure(reset=True)

    info = Activity._get_collection().index_information()

    assert info["eventId_unique"]["unique"] is True


# --- isolation modes and escape hatches


def test_soft_read_without_tenant_sees_every_tenant(declared: list[type[Any]]) -> None:
    configure(multi_tenant=True, tenant_field=FIELD, tenant_isolation="soft")
    log_for("acme")
    log_for("globex")

    assert Activity.objects.count() == 2
    with activity_context(tenant="acme"):
        assert [activity.tenant for activity in Activity.objects] == ["acme"]


def test_all_tenants_reads_everything_and_logs(
    tenants: None, caplog: pytest.LogCaptureFixture
) -> None:
    log_for("acme")
    log_for("globex")

    with caplog.at_level(logging.WARNING):
        everything = Activity.objects.all_tenants().order_by("created_at", "id")
        tenants_seen = [activity.tenant for activity in everything]

    assert tenants_seen == ["acme", "globex"]
    assert caplog.messages == ["activities read across all tenants (ALL_TENANTS)"]


def test_all_tenants_in_context_reads_everything(tenants: None) -> None:
    log_for("acme")
    log_for("globex")

    with activity_context(tenant=ALL_TENANTS):
        assert Activity.objects.count() == 2


def test_for_tenant_binds_whatever_the_context(tenants: None) -> None:
    log_for("acme")
    log_for("globex")

    with activity_context(tenant="acme"):
        bound = Activity.objects.for_tenant("globex")
        assert [activity.tenant for activity in bound] == ["globex"]
    assert bound.filter(type="note_added").count() == 1


@pytest.mark.parametrize("tenant", [None, "", 0], ids=["none", "empty", "zero"])
def test_for_tenant_refuses_an_empty_tenant(tenants: None, tenant: Any) -> None:
    with pytest.raises(TenantRequiredError, match=EMPTY):
        Activity.objects.for_tenant(tenant)


@pytest.mark.parametrize(
    "raw",
    [
        {FIELD: "globex"},
        {FIELD: {"$in": ["acme", "globex"]}},
        {"$or": [{FIELD: "globex"}, {"type": "note_added"}]},
        {FIELD: {"$exists": True}},
    ],
    ids=["other", "in", "or", "exists"],
)
def test_a_filter_never_widens_the_tenant(tenants: None, raw: dict[str, Any]) -> None:
    log_for("acme")
    log_for("globex")

    with activity_context(tenant="acme"):
        found = [activity.tenant for activity in Activity.objects(__raw__=raw)]

    assert set(found) <= {"acme"}


def test_update_and_delete_touch_only_the_tenant(tenants: None) -> None:
    log_for("acme")
    log_for("globex")

    with activity_context(tenant="acme"):
        assert Activity.objects.update(set__type="changed") == 1
        assert Activity.objects.delete() == 1

    assert [(son[FIELD], son["type"]) for son in stored()] == [("globex", "note_added")]


def test_tenancy_off_ignores_the_context_tenant() -> None:
    with activity_context(tenant="acme"):
        log_activity("note_added", entity=("Note", 1))
        assert Activity.objects.count() == 1

    assert FIELD not in stored()[0]
    assert "tenantId" not in stored()[0]
    assert Activity.objects.count() == 1
    assert Activity.objects.first().tenant is None


# --- per-model declarations


def test_a_model_declaration_turns_on_scoped_reads(
    declared: list[type[Any]],
) -> None:
    class Contract(TrackedDocument):
        org = me.StringField()
        meta = {"activity": {"multi_tenant": True, "tenant_document_field": "org"}}

    declared.append(Contract)
    Contract(org="acme").save()

    with pytest.raises(TenantRequiredError, match="set by Contract"):
        Activity.objects.count()
    with activity_context(tenant="acme"):
        assert [activity.tenant for activity in Activity.objects] == ["acme"]
    assert [son["tenantId"] for son in stored()] == ["acme"]


def test_models_must_agree_on_the_tenant_field(declared: list[type[Any]]) -> None:
    configure(multi_tenant=True, tenant_field=FIELD)

    with pytest.raises(
        ConfigurationError,
        match="need one tenant_field; configure\\(\\) uses 'organizationId', "
        "Ledger uses 'orgId'",
    ):

        class Ledger(TrackedDocument):
            meta = {"activity": {"tenant_field": "orgId"}}

    assert tenancy.tenant_policy() == tenancy.TenantPolicy(
        field=FIELD, isolation="strict", sources=("configure()",)
    )


def test_tenant_document_field_must_exist(declared: list[type[Any]]) -> None:
    with pytest.raises(
        ConfigurationError, match="'tenant_document_field': 'org' is not a field"
    ):

        class Receipt(TrackedDocument):
            meta = {"activity": {"multi_tenant": True, "tenant_document_field": "org"}}


def test_all_tenants_is_one_object() -> None:
    assert repr(ALL_TENANTS) == "ALL_TENANTS"
    assert ma.ALL_TENANTS is tenancy.ALL_TENANTS


# --- properties: random tenants, users and operations

TENANTS = ["acme", "globex", "7", 7, ObjectId("5f0000000000000000000001")]
USERS = ["ann", "bob", None]

writes = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(USERS),
        st.sampled_from(["manual", "invoice", "note"]),
        st.one_of(st.none(), st.sampled_from(["evt-1", "evt-2"])),
    ),
    min_size=1,
    max_size=10,
)


def _write(tenant: Any, user: Any, kind: str, event_id: str | None) -> None:
    if kind == "invoice":
        # The document's tenant, while the context names another one.
        with activity_context(tenant="decoy", user_id=user):
            Invoice(organization=str(tenant)).save()
    elif kind == "note":
        with activity_context(tenant=tenant, user_id=user):
            Note(text="hi").save()
    else:
        log_for(tenant, user_id=user, event_id=event_id)


def _tenant_of(kind: str, tenant: Any) -> Any:
    return str(tenant) if kind == "invoice" else tenant


OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "iterate": lambda user: {a.id for a in Activity.objects},
    "by_user": lambda user: {a.id for a in Activity.objects(user_id=user)},
    "count": lambda user: Activity.objects.count(),
    "as_pymongo": lambda user: {d["_id"] for d in Activity.objects.as_pymongo()},
    "first": lambda user: Activity.objects.order_by("id").first(),
    "distinct_users": lambda user: sorted(
        Activity.objects.distinct("user_id"), key=repr
    ),
    "aggregate": lambda user: {
        d["_id"] for d in Activity.objects.aggregate([{"$project": {"_id": 1}}])
    },
    "in_bulk": lambda user: set(
        Activity.objects.in_bulk(
            [d["_id"] for d in Activity._get_collection().find({}, {"_id": 1})]
        )
    ),
    "widen": lambda user: {
        a.id
        for a in Activity.objects(
            __raw__={"$or": [{FIELD: {"$in": TENANTS}}, {"userId": user}]}
        )
    },
    "update": lambda user: Activity.objects(user_id=user).update(set__type="seen"),
    "delete": lambda user: Activity.objects(user_id=user).delete(),
}


def _expected(name: str, mine: list[dict[str, Any]], user: Any) -> Any:
    ids = {son["_id"] for son in mine}
    by_user = {son["_id"] for son in mine if son["userId"] == user}
    return {
        "iterate": ids,
        "by_user": by_user,
        "count": len(ids),
        "as_pymongo": ids,
        "first": min(ids) if ids else None,
        "distinct_users": sorted({son["userId"] for son in mine}, key=repr),
        "aggregate": ids,
        "in_bulk": ids,
        "widen": {
            son["_id"] for son in mine if son[FIELD] in TENANTS or son["userId"] == user
        },
        "update": len(by_user),
        "delete": len(by_user),
    }[name]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    writes=writes,
    reader=st.sampled_from(TENANTS),
    user=st.sampled_from(USERS),
    operation=st.sampled_from(sorted(OPERATIONS)),
)
def test_no_read_returns_another_tenants_activity(
    tenants: None,
    writes: list[tuple[Any, Any, str, str | None]],
    reader: Any,
    user: Any,
    operation: str,
) -> None:
    Activity._get_collection().delete_many({})
    for tenant, acting, kind, event_id in writes:
        _write(tenant, acting, kind, event_id)
    everything = stored()
    mine = [son for son in everything if son[FIELD] == reader]
    others = [son for son in everything if son[FIELD] != reader]

    with activity_context(tenant=reader):
        result = OPERATIONS[operation](user)

    if operation == "first":
        result = result.id if result is not None else None
    assert result == _expected(operation, mine, user)
    assert [son for son in stored() if son[FIELD] != reader] == others
    assert [son[FIELD] for son in everything] == _stored_tenants(writes)


def _stored_tenants(writes: list[tuple[Any, Any, str, str | None]]) -> list[Any]:
    """The tenant of each activity the writes store: a repeated event id is
    stored once per tenant."""
    seen: set[tuple[str, str]] = set()
    expected = []
    for tenant, _, kind, event_id in writes:
        if kind == "manual" and event_id is not None:
            key = (repr(tenant), event_id)
            if key in seen:
                continue
            seen.add(key)
        expected.append(_tenant_of(kind, tenant))

    return expected


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    writes=writes,
    isolation=st.sampled_from(["strict", "soft"]),
    user=st.sampled_from(USERS),
    operation=st.sampled_from(sorted(OPERATIONS)),
)
def test_strict_never_falls_back_and_soft_reads_everything(
    tenants: None,
    writes: list[tuple[Any, Any, str, str | None]],
    isolation: str,
    user: Any,
    operation: str,
) -> None:
    configure(tenant_isolation=isolation)
    Activity._get_collection().delete_many({})
    for tenant, acting, kind, event_id in writes:
        _write(tenant, acting, kind, event_id)
    everything = stored()

    if isolation == "strict":
        with pytest.raises(TenantRequiredError, match=NO_TENANT):
            OPERATIONS[operation](user)
        assert stored() == everything
        return

    result = OPERATIONS[operation](user)
    if operation == "first":
        result = result.id if result is not None else None
    assert result == _expected(operation, everything, user)


REREADS = {
    "lookup": {"$lookup": {"from": "activities", "as": "x", "pipeline": []}},
    "graph": {
        "$graphLookup": {
            "from": "activities",
            "startWith": "$userId",
            "connectFromField": "userId",
            "connectToField": "userId",
            "as": "x",
        }
    },
    "union": {"$unionWith": "activities"},
    "union_coll": {"$unionWith": {"coll": "activities_archive", "pipeline": []}},
    "nested": {"$facet": {"a": [{"$unionWith": "activities"}]}},
}


@pytest.mark.parametrize("stage", REREADS.values(), ids=REREADS.keys())
def test_aggregate_refuses_to_reread_the_log_past_the_scope(
    tenants: None, stage: dict[str, Any]
) -> None:
    log_for("acme")
    log_for("globex")

    with (
        activity_context(tenant="acme"),
        pytest.raises(TenantRequiredError, match="would read past the tenant scope"),
    ):
        Activity.objects.aggregate([stage])


def test_aggregate_may_reread_the_log_across_all_tenants(tenants: None) -> None:
    log_for("acme")
    log_for("globex")

    same_entity = {
        "$lookup": {
            "from": "activities",
            "localField": "entity.id",
            "foreignField": "entity.id",
            "as": "same",
        }
    }

    found = list(
        Activity.objects.all_tenants().aggregate(
            [same_entity, {"$project": {"_id": 0, "n": {"$size": "$same"}}}]
        )
    )

    assert found == [{"n": 2}, {"n": 2}]


def test_scope_query_narrows_a_raw_query(tenants: None) -> None:
    log_for("acme")
    log_for("globex")
    collection = Activity._get_collection()

    with activity_context(tenant="acme"):
        query = tenancy.scope_query({"type": "note_added"})
        found = [son[FIELD] for son in collection.find(query)]

    assert query == {FIELD: "acme", "type": "note_added"}
    assert found == ["acme"]
    with pytest.raises(TenantRequiredError, match=NO_TENANT):
        tenancy.scope_query({})


def test_configure_creates_tenant_indexes_on_first_use(
    declared: list[type[Any]],
) -> None:
    Activity._get_collection()
    configure(multi_tenant=True, tenant_field=FIELD)

    info = Activity._get_collection().index_information()

    assert info["organizationId_eventId_unique"]["key"] == [(FIELD, 1), ("eventId", 1)]
    assert info["organizationId_createdAt"]["key"] == [
        (FIELD, 1),
        ("createdAt", -1),
        ("_id", -1),
    ]
    # Dropping the global index is left to ensure_tenant_indexes().
    assert "eventId_unique" in info


def test_index_that_cannot_come_back_is_logged_not_raised(
    declared: list[type[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    configure(multi_tenant=True, tenant_field=FIELD)
    ensure_tenant_indexes()
    log_for("acme", event_id="evt-1")
    log_for("globex", event_id="evt-1")
    configure(reset=True)

    with caplog.at_level(logging.WARNING):
        count = Activity.objects.count()

    assert count == 2
    assert "could not create the activity index 'eventId_unique'" in caplog.text
    Activity._get_collection().delete_many({})


def test_for_tenant_with_tenancy_off_raises() -> None:
    with pytest.raises(ConfigurationError, match="multi-tenancy is off, so no query"):
        Activity.objects.for_tenant("acme")


def test_in_scope_tells_whether_a_reader_may_see_an_activity(tenants: None) -> None:
    acme = log_for("acme")
    globex = log_for("globex")

    with activity_context(tenant="acme"):
        assert [tenancy.in_scope(acme), tenancy.in_scope(globex)] == [True, False]
        assert tenancy.in_scope(stored()[1]) is False
    with activity_context(tenant=ALL_TENANTS):
        assert tenancy.in_scope(globex) is True
    with pytest.raises(TenantRequiredError, match=NO_TENANT):
        tenancy.in_scope(acme)


def test_dynamic_document_may_name_an_undeclared_tenant_field(
    declared: list[type[Any]],
) -> None:
    class Sheet(TrackedDynamicDocument):
        meta = {"activity": {"multi_tenant": True, "tenant_document_field": "org"}}

    declared.append(Sheet)
    Sheet(org="acme").save()

    assert [son["tenantId"] for son in stored()] == ["acme"]


def test_a_deferred_tenant_is_computed_for_each_read_and_write(tenants: None) -> None:
    current = {"tenant": "acme"}
    with activity_context(tenant=deferred(lambda: current["tenant"])):
        log_for_context = log_activity("note_added", entity=("Note", 1))
        current["tenant"] = "globex"
        assert Activity.objects.count() == 0
        current["tenant"] = "acme"
        assert Activity.objects.count() == 1

    assert log_for_context is not None
    assert [son[FIELD] for son in stored()] == ["acme"]


def test_aggregate_refuses_a_lookup_into_the_log_named_with_its_database(
    tenants: None,
) -> None:
    log_for("acme")
    database = Activity._get_db().name
    stage = {
        "$lookup": {
            "from": {"db": database, "coll": "activities"},
            "localField": "entity.id",
            "foreignField": "entity.id",
            "as": "same",
        }
    }

    with (
        activity_context(tenant="acme"),
        pytest.raises(
            TenantRequiredError,
            match=rf"\$lookup into '{database}\.activities' would read past",
        ),
    ):
        Activity.objects.aggregate([stage])


@pytest.mark.parametrize(
    "target",
    [{"db": "other", "coll": "activities"}, {"coll": "orders"}, "orders"],
    ids=["other-db", "other-coll", "plain-name"],
)
def test_aggregate_allows_lookups_into_other_collections(target: Any) -> None:
    from mongoengine_activity.models import _refuse_rereads

    stage = {"$lookup": {"from": target, "as": "x", "pipeline": []}}

    _refuse_rereads([stage], {"activities"}, "shop", FIELD)


def test_for_tenant_all_tenants_reads_every_tenant(tenants: None) -> None:
    log_for("acme")
    log_for("globex")

    with activity_context(tenant="acme"):
        assert Activity.objects.for_tenant(ALL_TENANTS).count() == 2


def test_a_delete_of_a_document_loaded_without_its_tenant_keeps_its_tenant(
    tenants: None,
) -> None:
    invoice = Invoice(number="1", organization="globex").save()

    with activity_context(tenant="acme"):
        Invoice.objects.only("number").get(pk=invoice.pk).delete()

    assert [(son["type"], son[FIELD]) for son in stored()] == [
        ("invoice_created", "globex"),
        ("invoice_deleted", "globex"),
    ]


def test_a_delete_of_a_document_stored_without_a_tenant_takes_the_context(
    tenants: None,
) -> None:
    pk = ObjectId()
    Invoice._get_collection().insert_one({"_id": pk, "number": "5"})

    with activity_context(tenant="acme"):
        Invoice.objects.get(pk=pk).delete()

    assert [(son["type"], son[FIELD]) for son in stored()] == [
        ("invoice_deleted", "acme")
    ]


class Organization(me.Document):
    name = me.StringField()


def test_a_generic_reference_tenant_is_the_referenced_id(tenants: None) -> None:
    class Contract(TrackedDocument):
        title = me.StringField()
        organization = me.GenericReferenceField(db_field=FIELD)

    acme = Organization(name="acme").save()

    Contract(title="c", organization=acme).save()

    assert [son[FIELD] for son in stored()] == [acme.pk]
    with activity_context(tenant=acme.pk):
        assert Activity.objects.count() == 1


def test_a_delete_of_a_model_without_a_tenant_field_reads_nothing_more(
    tenants: None,
) -> None:
    from .spies import CollectionSpy

    with activity_context(tenant="acme"):
        Note(text="n").save()
        note = Note.objects.get()
        with CollectionSpy(Note) as spy:
            note.delete()

    assert spy.calls == ["delete_many"]


def test_a_save_of_a_document_loaded_without_its_tenant_keeps_its_tenant(
    tenants: None,
) -> None:
    invoice = Invoice(number="1", organization="globex").save()

    with activity_context(tenant="acme"):
        partial = Invoice.objects.only("number").get(pk=invoice.pk)
        partial.number = "2"
        partial.save()

    assert [(son["type"], son[FIELD]) for son in stored()] == [
        ("invoice_created", "globex"),
        ("invoice_updated", "globex"),
    ]
    assert Invoice._get_collection().find_one({}, {"_id": 0}) == {
        "number": "2",
        FIELD: "globex",
    }
