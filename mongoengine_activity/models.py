"""The ``Activity`` document, its fields, indexes and QuerySet."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal

from mongoengine import (
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    QuerySet,
    StringField,
)
from mongoengine.base import BaseField, _document_registry
from mongoengine.errors import OperationError
from mongoengine.queryset import QuerySetNoCache
from pymongo.errors import OperationFailure

from ._bson import normalize, restore
from .errors import ConfigurationError, TenantRequiredError
from .options import current_settings
from .tenancy import (
    ALL_TENANTS,
    check_tenant,
    read_tenant_filter,
    scope_query,
    tenant_policy,
)

if TYPE_CHECKING:
    from ._ranges import DateRange
    from .compliance import ForgetResult
    from .export import Format as ExportFormat
    from .integrity import ChainReport, IntegrityResult
    from .options import ActivityOptions, Settings
    from .pages import Page
    from .templates import Rendered, Template

__all__ = [
    "Activity",
    "ActivityEntity",
    "ActivityQuerySet",
    "BSONField",
    "ensure_tenant_indexes",
    "tracked_options",
]

logger = logging.getLogger("mongoengine_activity")

_GLOBAL_EVENT_INDEX = "eventId_unique"
# Feed indexes that get a tenant-prefixed twin when multi-tenancy is on.
_TENANT_TWINS = (
    "userId_createdAt",
    "entity_createdAt",
    "entityType_createdAt",
    "type_createdAt",
    "teamId_createdAt",
    "createdAt",
    _GLOBAL_EVENT_INDEX,
)


class BSONField(BaseField):  # type: ignore[misc]
    """A field that stores any BSON value as it is, without MongoEngine's
    conversions: a mapping that happens to contain ``_cls`` stays a mapping, and
    a UUID is stored as a standard binary that works on every backend."""

    def to_python(self, value: Any) -> Any:
        return restore(value)

    def to_mongo(self, value: Any) -> Any:
        return normalize(value)

    def prepare_query_value(self, op: str, value: Any) -> Any:
        return normalize(value)

    def validate(self, value: Any, clean: bool = True) -> None:
        """Any BSON value is accepted; the write path validates input."""

    def lookup_member(self, member_name: str) -> BSONField:
        return BSONField(db_field=member_name)


class ActivityEntity(EmbeddedDocument):  # type: ignore[misc]
    """Which document an activity is about: its type name and primary key."""

    type = StringField(required=True)
    id = BSONField()

    meta = {"allow_inheritance": False, "strict": False}

    def __repr__(self) -> str:
        return f"<ActivityEntity {self.type}:{self.id!r}>"


class ActivityQuerySet(QuerySet):  # type: ignore[misc]
    """The QuerySet of ``Activity.objects``; feed helpers are methods here.

    With multi-tenancy on, every query it runs (iteration, ``count``,
    ``first``, ``get``, ``distinct``, ``aggregate``, ``update``, ``delete``,
    ``as_pymongo``, ``in_bulk``...) is narrowed to the tenant in context when
    it runs, or to the one bound with :meth:`for_tenant`; under strict
    isolation, running one without a tenant raises
    :class:`~mongoengine_activity.errors.TenantRequiredError`. Building a
    QuerySet never raises, running it does.

    The helpers live in the read side (``feeds``, ``pages``, ``stats``) and the
    model layer must not import it, so each method imports its module when
    called and passes ``self``: the helpers narrow this queryset with
    ``filter()`` and ``aggregate()``, so a filter applied to the queryset (a
    tenant, say) flows through every one of them. Every feed helper returns a
    chainable queryset, newest first (``createdAt``, then ``_id``, descending).
    ``verify_chain()`` calls :mod:`mongoengine_activity.integrity` likewise.
    """

    _tenant_bound: Any = None
    _tenant_logged = False

    def for_tenant(self, tenant: Any) -> ActivityQuerySet:
        """This QuerySet, bound to ``tenant`` whatever the context says;
        ``for_tenant(ALL_TENANTS)`` is :meth:`all_tenants`."""
        if tenant is ALL_TENANTS:
            return self.all_tenants()
        policy = tenant_policy()
        field = policy.field if policy is not None else "tenant"
        check_tenant(tenant, field=field, where="Activity.objects.for_tenant()")
        queryset: ActivityQuerySet = self.clone()
        queryset._tenant_bound = tenant
        read_tenant_filter(tenant, quiet=True)  # raises if tenancy is off
        return queryset

    def all_tenants(self) -> ActivityQuerySet:
        """This QuerySet over every tenant: for admin jobs, logged at WARNING."""
        queryset: ActivityQuerySet = self.clone()
        queryset._tenant_bound = ALL_TENANTS
        return queryset

    def tenant_filter(self) -> dict[str, Any]:
        """The ``{tenant_field: tenant}`` this QuerySet adds to its queries.

        ``{}`` when multi-tenancy is off or every tenant is read. For helpers
        that build a raw pipeline on the collection: put it in their first
        ``$match``. Raises like a query would.
        """
        scope = read_tenant_filter(self._tenant_bound, quiet=self._tenant_logged)
        self._tenant_logged = True
        return scope

    def no_cache(self) -> ActivityQuerySet:
        """A non-caching copy of this QuerySet, scoped the same way."""
        if self._result_cache is not None:
            raise OperationError("QuerySet already cached")

        queryset: ActivityQuerySet = self._clone_into(
            _ActivityQuerySetNoCache(self._document, self._collection)
        )
        return queryset

    def _clone_into(self, new_qs: Any) -> Any:
        new_qs = super()._clone_into(new_qs)
        new_qs._tenant_bound = self._tenant_bound
        return new_qs

    @property
    def _query(self) -> dict[str, Any]:
        query: dict[str, Any] = super()._query
        scoped = scope_query(query, self._tenant_bound, quiet=self._tenant_logged)
        # One operation reads the query several times; one log line per QuerySet.
        self._tenant_logged = True
        return scoped

    def aggregate(self, pipeline: Any, *suppl_pipeline: Any, **kwargs: Any) -> Any:
        """MongoEngine's ``aggregate``, after the tenant's ``$match``.

        Under a tenant scope, a stage that reads the activity or archive
        collection again (``$lookup``, ``$graphLookup``, ``$unionWith``) is
        refused: the scope covers only the first ``$match``.
        """
        scope = read_tenant_filter(self._tenant_bound, quiet=True)
        if scope:
            stages = [pipeline] if isinstance(pipeline, dict) else list(pipeline)
            _refuse_rereads(
                [*stages, *suppl_pipeline],
                {self._collection.name, current_settings().archive_collection},
                self._collection.database.name,
                next(iter(scope)),
            )

        return super().aggregate(pipeline, *suppl_pipeline, **kwargs)

    def in_bulk(self, object_ids: Iterable[Any]) -> dict[Any, Any]:
        """Activities by id, like MongoEngine's, within the tenant in force."""
        query = scope_query({"_id": {"$in": list(object_ids)}}, self._tenant_bound)
        found: dict[Any, Any] = {}
        for son in self._collection.find(query, **self._cursor_args):
            if self._as_pymongo:
                found[son["_id"]] = son
                continue
            document = self._document._from_son(
                son, _auto_dereference=self._auto_dereference
            )
            found[son["_id"]] = self._get_scalar(document) if self._scalar else document

        return found

    def global_feed(
        self,
        entities: str | Iterable[str] | None = None,
        types: str | Iterable[str] | None = None,
        limit: int | None = 50,
    ) -> ActivityQuerySet:
        """Every activity, optionally only of some entity types or verbs."""
        from .feeds import global_feed

        return global_feed(self, entities=entities, types=types, limit=limit)

    def user_feed(
        self,
        user_id: Any,
        *,
        entities: str | Iterable[str] | None = None,
        types: str | Iterable[str] | None = None,
        limit: int | None = 50,
    ) -> ActivityQuerySet:
        """What one user did."""
        from .feeds import user_feed

        return user_feed(self, user_id, entities=entities, types=types, limit=limit)

    def team_feed(
        self,
        team_id: Any,
        *,
        entities: str | Iterable[str] | None = None,
        types: str | Iterable[str] | None = None,
        limit: int | None = 50,
    ) -> ActivityQuerySet:
        """What happened in one team."""
        from .feeds import team_feed

        return team_feed(self, team_id, entities=entities, types=types, limit=limit)

    def entity_history(
        self,
        entity_type: str,
        entity_id: Any,
        *,
        types: str | Iterable[str] | None = None,
        limit: int | None = None,
    ) -> ActivityQuerySet:
        """Everything that happened to one document."""
        from .feeds import entity_history

        return entity_history(self, entity_type, entity_id, types=types, limit=limit)

    def search(
        self,
        text: str | None = None,
        *,
        date_range: DateRange = None,
        types: str | Iterable[str] | None = None,
        user_id: Any = None,
        entities: str | Iterable[str] | None = None,
        limit: int | None = 50,
        use_text_index: bool | None = None,
        now: dt.datetime | None = None,
    ) -> ActivityQuerySet:
        """Activities mentioning ``text``; see :func:`feeds.search`."""
        from .feeds import search

        return search(
            self,
            text,
            date_range=date_range,
            types=types,
            user_id=user_id,
            entities=entities,
            limit=limit,
            use_text_index=use_text_index,
            now=now,
        )

    def page(self, after: str | None = None, *, limit: int = 50) -> Page[Any]:
        """One page after the cursor ``after``; see :func:`pages.page`."""
        from .pages import page

        return page(self, after, limit=limit)

    def stats(
        self,
        group_by: str = "type",
        *,
        date_range: DateRange = "last30days",
        metrics: Iterable[str] = ("count",),
        now: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Counts per group, computed by one pipeline; see :func:`stats.stats`."""
        from .stats import stats

        return stats(self, group_by, date_range=date_range, metrics=metrics, now=now)

    def verify_chain(
        self,
        *,
        allow_pruned: bool = False,
        progress: Callable[[int], Any] | None = None,
    ) -> ChainReport:
        """Verify the signatures and hash chains of these activities' streams."""
        from .integrity import verify_chain

        return verify_chain(self, allow_pruned=allow_pruned, progress=progress)

    def as_dicts(self) -> ActivityQuerySet:
        """Yield stored activity dicts (``userId``, ``meta``, ``createdAt``...)
        instead of documents: the light read path for feeds. UUIDs come back as
        ``uuid.UUID``, as they do on documents."""
        light: ActivityQuerySet = self.as_pymongo()
        return light

    def __next__(self) -> Any:
        item = super().__next__()
        return restore(item) if self._as_pymongo else item

    def __getitem__(self, key: Any) -> Any:
        item = super().__getitem__(key)
        return restore(item) if self._as_pymongo and isinstance(key, int) else item


class _ActivityQuerySetNoCache(QuerySetNoCache, ActivityQuerySet):  # type: ignore[misc]
    """``Activity.objects.no_cache()``: MongoEngine's non-caching QuerySet with
    the tenant scope and the feed helpers of :class:`ActivityQuerySet`."""

    def cache(self) -> ActivityQuerySet:
        queryset: ActivityQuerySet = self._clone_into(
            ActivityQuerySet(self._document, self._collection)
        )
        return queryset


_REREADS = {"$lookup": "from", "$graphLookup": "from", "$unionWith": "coll"}


def _reread_target(key: str, item: Any, database: str) -> str | None:
    """The collection a stage reads, if it is one of this database's; a
    ``$lookup`` may name it ``{"db": ..., "coll": ...}``."""
    target = item if key == "$unionWith" and isinstance(item, str) else None
    if key in _REREADS and isinstance(item, Mapping):
        target = item.get(_REREADS[key])
    if isinstance(target, Mapping):
        if target.get("db", database) != database:
            return None
        target = target.get("coll")

    return target if isinstance(target, str) else None


def _refuse_rereads(
    value: Any, collections: set[str], database: str, field: str
) -> None:
    """Raise if a pipeline reads one of ``collections`` (of ``database``)
    past the tenant scope."""
    if isinstance(value, list):
        for item in value:
            _refuse_rereads(item, collections, database, field)
        return
    if not isinstance(value, Mapping):
        return

    for key, item in value.items():
        target = _reread_target(key, item, database)
        if target in collections:
            shown = (
                f"{database}.{target}"
                if isinstance(item, Mapping) and isinstance(item.get("from"), Mapping)
                else target
            )
            raise TenantRequiredError(
                f"aggregate(): {key} into {shown!r} would read past the tenant "
                f"scope (field {field!r}), which covers only the first $match; "
                "read that collection with its own tenant-scoped query, or use "
                "Activity.objects.all_tenants() in an admin job",
                field=field,
            )
        _refuse_rereads(item, collections, database, field)


def _index(*fields: str, **options: Any) -> dict[str, Any]:
    return {"fields": list(fields), **options}


class Activity(Document):  # type: ignore[misc]
    """One entry of the activity log: who did what to which entity, and when.

    ``verify_integrity()``, ``forget_user()`` and ``export_user_data()`` are
    thin methods that import the read side (``integrity``, ``compliance``,
    ``export``) when called, so loading this layer imports none of them.

    Attribute names are Python's; stored names match ``@kommix/mongoose-activity``
    (``userId``, ``meta``, ``createdAt``...), so services in both languages can
    share one collection. ``data`` is stored as ``meta`` because MongoEngine
    reserves that attribute.

    The write path adds ``Activity.bulk_log(items, chunk_size=1000)``,
    ``Activity.prune(older_than, ...)`` and ``Activity.archive(older_than,
    ...)`` (see :mod:`~mongoengine_activity.bulk` and
    :mod:`~mongoengine_activity.lifecycle`); they live there because this
    layer does not write activities.
    """

    user_id = BSONField(db_field="userId")
    entity = EmbeddedDocumentField(ActivityEntity)
    type = StringField(required=True)
    data = BSONField(db_field="meta", default=dict)
    created_at = DateTimeField(db_field="createdAt", required=True)
    changes = BSONField(default=list)
    context = BSONField(default=dict)
    team_id = BSONField(db_field="teamId")
    event_id = StringField(db_field="eventId")
    expires_at = DateTimeField(db_field="expiresAt")
    signature = BSONField(db_field="sig")

    meta = {
        "collection": "activities",
        "allow_inheritance": False,
        "strict": False,
        "queryset_class": ActivityQuerySet,
        "indexes": [
            _index("user_id", "-created_at", "-id", name="userId_createdAt"),
            _index(
                "entity.type",
                "entity.id",
                "-created_at",
                "-id",
                name="entity_createdAt",
            ),
            _index("entity.type", "-created_at", "-id", name="entityType_createdAt"),
            _index("type", "-created_at", "-id", name="type_createdAt"),
            _index("team_id", "-created_at", "-id", name="teamId_createdAt"),
            _index("-created_at", "-id", name="createdAt"),
            _index(
                "event_id",
                name="eventId_unique",
                unique=True,
                partialFilterExpression={"eventId": {"$type": "string"}},
            ),
            _index("expires_at", name="expiresAt_ttl", expireAfterSeconds=0),
            _index(
                "signature.stream",
                "signature.seq",
                name="sig_stream_seq",
                partialFilterExpression={"sig.stream": {"$exists": True}},
            ),
        ],
    }

    @property
    def tenant(self) -> Any:
        """The tenant this activity belongs to; ``None`` with tenancy off."""
        policy = tenant_policy()
        if policy is None:
            return None

        return restore(self._data.get(policy.field))

    def __repr__(self) -> str:
        entity = f"{self.entity.type}:{self.entity.id!r}" if self.entity else "-"
        return f"<Activity {self.type} {entity} at {self.created_at}>"

    @classmethod
    def _get_collection(cls) -> Any:
        current_settings()  # the first call applies the environment's settings
        collection = super()._get_collection()
        policy = tenant_policy()
        key = policy.field if policy is not None else None
        if cls.__dict__.get("_indexed_for", _NOT_INDEXED) != key and cls._meta.get(
            "auto_create_index", True
        ):
            # The tenancy policy changed since the indexes were made. A failure
            # here must not break every read: it is logged instead.
            cls._create_indexes(raise_errors=False)

        return collection

    @classmethod
    def ensure_indexes(cls) -> None:
        """Create the indexes in force: with multi-tenancy on, the feed indexes
        get tenant-prefixed twins and ``event_id`` is unique per tenant."""
        cls._create_indexes(raise_errors=True)

    @classmethod
    def _create_indexes(cls, *, raise_errors: bool) -> None:
        policy = tenant_policy()
        cls._indexed_for = policy.field if policy is not None else None
        collection = cls._get_collection()
        background = cls._meta.get("index_background", False)
        for spec in _index_specs(cls._meta["index_specs"], cls._indexed_for):
            options = dict(spec)
            fields = options.pop("fields")
            try:
                collection.create_index(fields, background=background, **options)
            except OperationFailure as error:
                if raise_errors:
                    raise
                logger.warning(
                    "could not create the activity index %r (%s); until it "
                    "exists the database does not enforce it",
                    options.get("name"),
                    type(error).__name__,
                )

    @classmethod
    def register_template(
        cls,
        type: str,
        *,
        message: str,
        icon: str | None = None,
        color: str | None = None,
    ) -> Template:
        """Register how activities of verb ``type`` read; see ``templates``."""
        from .templates import register_template

        return register_template(type, message=message, icon=icon, color=color)

    def render(self, *, html: bool = False) -> Rendered:
        """This activity as a person reads it: message, icon and colour."""
        from .templates import render

        return render(self, html=html)

    def verify_integrity(self) -> IntegrityResult:
        """Check this activity's signature as stored; the result says what failed."""
        from .integrity import verify_integrity

        return verify_integrity(self)

    @staticmethod
    def forget_user(
        user_id: Any,
        *,
        strategy: Literal["redact", "delete"] = "redact",
        preserve_structure: bool = True,
        progress: Callable[[int], Any] | None = None,
    ) -> ForgetResult:
        """Pseudonymise or delete ``user_id``'s activities; see ``compliance``."""
        from .compliance import forget_user

        return forget_user(
            user_id,
            strategy=strategy,
            preserve_structure=preserve_structure,
            progress=progress,
        )

    @staticmethod
    def export_user_data(
        user_id: Any,
        *,
        format: ExportFormat = "json",
        date_range: tuple[dt.datetime | None, dt.datetime | None] | None = None,
        include_deleted: bool = True,
        fp: IO[bytes] | None = None,
        progress: Callable[[int], Any] | None = None,
    ) -> Iterator[bytes] | int:
        """Stream ``user_id``'s activities as CSV, JSON, NDJSON or PDF; see
        ``export``."""
        from .export import export_user_data

        return export_user_data(
            user_id,
            format=format,
            date_range=date_range,
            include_deleted=include_deleted,
            fp=fp,
            progress=progress,
        )

    @classmethod
    def _apply_settings(cls, settings: Settings) -> None:
        """Point the model at the configured collection and connection alias."""
        if (
            cls._meta.get("collection") == settings.collection
            and cls._meta.get("db_alias", "default") == settings.db_alias
        ):
            return

        cls._meta["collection"] = settings.collection
        cls._meta["db_alias"] = settings.db_alias
        cls._collection = None


_NOT_INDEXED: Any = object()


def _index_specs(
    specs: Iterable[Mapping[str, Any]], tenant_field: str | None
) -> list[dict[str, Any]]:
    """The declared index specs, adjusted for the tenant field (if any).

    With a tenant field, the global unique ``eventId`` index is left out (it
    would make event ids unique across tenants) and the feed indexes get twins
    that start with the tenant field.
    """
    kept = [dict(spec) for spec in specs]
    if tenant_field is None:
        return kept

    twins = [
        {
            **spec,
            "fields": [(tenant_field, 1), *spec["fields"]],
            "name": f"{tenant_field}_{spec['name']}",
        }
        for spec in kept
        if spec.get("name") in _TENANT_TWINS
    ]
    return [spec for spec in kept if spec.get("name") != _GLOBAL_EVENT_INDEX] + twins


def ensure_tenant_indexes() -> list[str]:
    """Create the tenant-prefixed indexes and drop the global ``eventId`` one.

    Call it once after turning multi-tenancy on for a collection that already
    exists (a new collection gets the right indexes by itself). Dropping the
    global unique ``eventId`` index makes ``event_id`` unique per tenant, so
    two tenants may use the same event id. Returns the names of the tenant
    indexes. Raises :class:`ConfigurationError` when multi-tenancy is off.
    """
    policy = tenant_policy()
    if policy is None:
        raise ConfigurationError(
            "ensure_tenant_indexes(): multi-tenancy is off; turn it on with "
            "configure(multi_tenant=True, tenant_field=...) first"
        )

    Activity.ensure_indexes()
    collection = Activity._get_collection()
    if _GLOBAL_EVENT_INDEX in collection.index_information():
        collection.drop_index(_GLOBAL_EVENT_INDEX)
        logger.warning(
            "dropped the global unique index %r: event ids are now unique per "
            "tenant (%r)",
            _GLOBAL_EVENT_INDEX,
            policy.field,
        )

    return [
        spec["name"]
        for spec in _index_specs(Activity._meta["index_specs"], policy.field)
        if spec["name"].startswith(f"{policy.field}_")
    ]


def tracked_options() -> dict[str, list[ActivityOptions]]:
    """The options of every tracked model, by the entity type it logs.

    Several models may log one entity type (an app and its demo both have an
    ``Order``), hence a list.
    """
    found: dict[str, list[ActivityOptions]] = {}
    for cls in list(_document_registry.values()):
        get_options = getattr(cls, "activity_options", None)
        if get_options is None or cls._meta.get("abstract"):
            continue
        options = get_options()
        found.setdefault(options.entity_type_for(cls), []).append(options)

    return found
