"""The ``Activity`` document, its fields, indexes and QuerySet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mongoengine import (
    DateTimeField,
    Document,
    EmbeddedDocument,
    EmbeddedDocumentField,
    QuerySet,
    StringField,
)
from mongoengine.base import BaseField, _document_registry

from ._bson import normalize, restore

if TYPE_CHECKING:
    from .options import ActivityOptions, Settings

__all__ = [
    "Activity",
    "ActivityEntity",
    "ActivityQuerySet",
    "BSONField",
    "tracked_options",
]


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

    ``verify_chain()`` is installed by :mod:`mongoengine_activity.integrity`.
    """


def _index(*fields: str, **options: Any) -> dict[str, Any]:
    return {"fields": list(fields), **options}


class Activity(Document):  # type: ignore[misc]
    """One entry of the activity log: who did what to which entity, and when.

    ``verify_integrity()``, ``forget_user()`` and ``export_user_data()`` are
    installed by the modules that implement them (``integrity``,
    ``compliance``, ``export``), so this layer imports none of them.

    Attribute names are Python's; stored names match ``@kommix/mongoose-activity``
    (``userId``, ``meta``, ``createdAt``...), so services in both languages can
    share one collection. ``data`` is stored as ``meta`` because MongoEngine
    reserves that attribute.
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

    def __repr__(self) -> str:
        entity = f"{self.entity.type}:{self.entity.id!r}" if self.entity else "-"
        return f"<Activity {self.type} {entity} at {self.created_at}>"

    @classmethod
    def _get_collection(cls) -> Any:
        from .options import current_settings

        current_settings()  # the first call applies the environment's settings
        return super()._get_collection()

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


def tracked_options() -> dict[str, ActivityOptions]:
    """The options of every tracked model, by the entity type it logs."""
    found: dict[str, ActivityOptions] = {}
    for cls in list(_document_registry.values()):
        get_options = getattr(cls, "activity_options", None)
        if get_options is None or cls._meta.get("abstract"):
            continue
        options = get_options()
        found[options.entity_type or cls.__name__] = options

    return found
