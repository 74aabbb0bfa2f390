"""Automatic tracking: ``TrackedDocument`` and the receivers behind it.

How a save becomes an activity, with no extra read:

- loading keeps the raw document MongoDB returned as the *image* (no copy:
  MongoEngine builds the document's values from it without mutating it);
- a save hands MongoEngine's own ``$set``/``$unset`` (or the full document on
  insert) to the ``post_save`` receiver, which diffs exactly those paths
  against the image and then updates the image;
- a delete reports how many documents it really removed, so only a delete of a
  document that existed is logged.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from bson import ObjectId
from mongoengine import (
    Document,
    DynamicDocument,
    ObjectIdField,
    signals,
)
from mongoengine.base.metaclasses import TopLevelDocumentMetaclass
from mongoengine.context_managers import set_write_concern
from mongoengine.errors import BulkWriteError
from mongoengine.queryset import QuerySet

from ._bson import normalize
from ._paths import PathNames, field_named, state_below, walk_path
from .context import (
    collecting,
    context_value,
    tracking_disabled,
    tracking_enabled,
)
from .diff import Change, diff, diff_fields
from .errors import ConfigurationError, TrackingError
from .masking import ANY_KEY, drop_paths, keep_paths, matcher_for
from .models import Activity
from .options import (
    ActivityOptions,
    current_settings,
    resolve_options,
    settings_version,
    validate_options,
)
from .signals import dispatching
from .tenancy import (
    TENANT_OPTIONS,
    declare_tenant_model,
    document_tenant,
    tenant_not_loaded,
    write_tenant,
)
from .writer import WriteRequest, build_son, on_error_for, write_activity

if TYPE_CHECKING:
    from .history import History

__all__ = [
    "TrackedDocument",
    "TrackedDynamicDocument",
    "TrackedQuerySet",
    "tracking_disabled",
]

_MISSING: Any = object()
_HIDDEN_KEYS = frozenset({"_id", "_cls"})


# --- what a save or delete did


@dataclass(slots=True)
class _SaveOutcome:
    """What the last save sent to MongoDB, captured from MongoEngine's hooks."""

    written: Mapping[str, Any] | None = None
    update: Mapping[str, Any] | None = None
    replaced: Mapping[str, Any] | None = None


@dataclass(slots=True)
class _DeleteProbe:
    deleted: int | None = None


_delete_probe: contextvars.ContextVar[_DeleteProbe | None] = contextvars.ContextVar(
    "mongoengine_activity_delete_probe", default=None
)
_load_sink: contextvars.ContextVar[list[Mapping[str, Any]] | None] = (
    contextvars.ContextVar("mongoengine_activity_load_sink", default=None)
)


def _capturing_loads() -> AbstractContextManager[list[Mapping[str, Any]]]:
    """Collect the images of the documents loaded in the block."""
    return collecting(_load_sink)


class TrackedQuerySet(QuerySet):  # type: ignore[misc]
    """QuerySet of tracked models: ``update()``, ``update_one()`` and
    ``modify()`` write one activity per affected document (see
    :mod:`mongoengine_activity.querysets`); ``delete()`` reports how many
    documents it removed."""

    def update(
        self,
        upsert: bool = False,
        multi: bool = True,
        write_concern: Any = None,
        read_concern: Any = None,
        full_result: bool = False,
        array_filters: Any = None,
        **update: Any,
    ) -> Any:
        kwargs = {
            "write_concern": write_concern,
            "read_concern": read_concern,
            "array_filters": array_filters,
            **update,
        }
        if self._none or self._empty or not _should_track(self._document):
            return super().update(
                upsert=upsert, multi=multi, full_result=full_result, **kwargs
            )
        from .querysets import tracked_update

        return tracked_update(
            self,
            QuerySet.update,
            upsert=upsert,
            multi=multi,
            full_result=full_result,
            kwargs=kwargs,
        )

    def modify(
        self,
        upsert: bool = False,
        full_response: bool = False,
        remove: bool = False,
        new: bool = False,
        array_filters: Any = None,
        **update: Any,
    ) -> Any:
        if (
            full_response
            or self._none
            or self._empty
            or (remove and new)
            or not (update or upsert or remove)
            or not _should_track(self._document)
        ):
            return super().modify(
                upsert=upsert,
                full_response=full_response,
                remove=remove,
                new=new,
                array_filters=array_filters,
                **update,
            )
        from .querysets import tracked_modify

        return tracked_modify(
            self,
            QuerySet.modify,
            upsert=upsert,
            remove=remove,
            new=new,
            kwargs={"array_filters": array_filters, **update},
        )

    def delete(
        self,
        write_concern: Mapping[str, Any] | None = None,
        _from_doc_delete: bool = False,
        cascade_refs: Any = None,
    ) -> Any:
        deleted = super().delete(
            write_concern=write_concern,
            _from_doc_delete=_from_doc_delete,
            cascade_refs=cascade_refs,
        )
        probe = _delete_probe.get()
        if _from_doc_delete and probe is not None:
            probe.deleted = deleted

        return deleted

    def insert(
        self,
        doc_or_docs: Any,
        load_bulk: bool = True,
        write_concern: Mapping[str, Any] | None = None,
        signal_kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        """Insert as MongoEngine does; when an ordered bulk insert fails partway,
        log a create for each document it did insert, then re-raise."""
        documents = doc_or_docs if isinstance(doc_or_docs, list) else []
        assigned = _assign_object_ids(self._document, documents)
        try:
            return super().insert(
                doc_or_docs,
                load_bulk=load_bulk,
                write_concern=write_concern,
                signal_kwargs=signal_kwargs,
            )
        except BulkWriteError as error:
            # MongoEngine sends post_bulk_insert only on success. An ordered
            # insert stops at the first error, so the first nInserted went in.
            details = getattr(error.__context__, "details", None) or {}
            count = details.get("nInserted", 0)
            inserted = documents[:count] if isinstance(count, int) else []
            id_field = self._document._meta["id_field"]
            for each in assigned:
                if not any(each is done for done in inserted):
                    each._data[id_field] = None
            if inserted:
                _after_bulk_insert(self._document, inserted)
            raise
        except Exception:
            for each in assigned:
                each._data[self._document._meta["id_field"]] = None
            raise


def _assign_object_ids(document: Any, documents: list[Any]) -> list[Any]:
    """Give new documents their ObjectId before a bulk insert (as pymongo does
    to the copies it inserts), so a partly failed insert still knows the ids
    of the documents that went in. Returns the documents given one."""
    id_field = document._meta.get("id_field")
    if not isinstance(document._fields.get(id_field), ObjectIdField):
        return []
    assigned = [
        each for each in documents if isinstance(each, document) and each.pk is None
    ]
    for each in assigned:
        # Into _data: setting the attribute would mark the document as loaded.
        each._data[id_field] = ObjectId()

    return assigned


# Fields whose loaded value never shares a mutable container with the raw
# document MongoDB returned: scalars, references and MongoEngine's container
# fields (they build fresh lists, dicts and documents). Any other field -- a
# DynamicField hands the raw containers to the document -- is copied into the
# image at load, or an in-place edit would change the before-image too.
_FRESH_FIELDS = frozenset(
    {
        "StringField",
        "URLField",
        "EmailField",
        "IntField",
        "LongField",
        "FloatField",
        "DecimalField",
        "Decimal128Field",
        "BooleanField",
        "DateTimeField",
        "DateField",
        "ComplexDateTimeField",
        "ObjectIdField",
        "UUIDField",
        "BinaryField",
        "EnumField",
        "SequenceField",
        "ReferenceField",
        "LazyReferenceField",
        "GenericReferenceField",
        "GenericLazyReferenceField",
    }
)
_CONTAINER_FIELDS = frozenset(
    {
        "ListField",
        "SortedListField",
        "EmbeddedDocumentListField",
        "DictField",
        "MapField",
    }
)


def _shares_raw_containers(field: Any, seen: frozenset[type] = frozenset()) -> bool:
    kind = type(field).__name__
    if kind in _FRESH_FIELDS:
        return False
    if kind in _CONTAINER_FIELDS:
        inner = getattr(field, "field", None)
        return inner is not None and _shares_raw_containers(inner, seen)
    if kind == "EmbeddedDocumentField":
        document_type = field.document_type
        if document_type in seen:
            return False
        return any(
            _shares_raw_containers(inner, seen | {document_type})
            for inner in document_type._fields.values()
        )

    return True


def _copied_keys(document: Any) -> frozenset[str]:
    """Stored names of the fields whose raw value the image must copy."""
    return frozenset(
        field.db_field
        for field in document._fields.values()
        if _shares_raw_containers(field)
    )


def _get_path(image: Mapping[str, Any], path: str) -> Any:
    value: Any = image
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING

    return value


# --- the metaclass


class TrackedDocumentMetaclass(TopLevelDocumentMetaclass):  # type: ignore[misc]
    """Validates ``meta["activity"]`` and connects the receivers once per class."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        meta = dict(attrs.get("meta") or {})
        own = meta.pop("activity", None)
        attrs["meta"] = meta
        cls = super().__new__(mcs, name, bases, attrs)

        inherited: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            _inherit(inherited, base.__dict__.get("_activity_raw", {}))
        if own is not None:
            validate_options(own, f"{name}.meta['activity']")
            _inherit(inherited, own)
        cls._activity_raw = inherited
        cls._activity_resolved = None
        declared = validate_options(inherited, f"{name}.meta['activity']")

        if cls._meta.get("abstract"):
            return cls

        _check_trackable(cls)
        _check_field_names(cls, declared)
        cls._activity_paths = PathNames(cls, by_attribute=False)
        cls._activity_copied = _copied_keys(cls)
        signals.pre_save.connect(_before_save, sender=cls, weak=False)
        signals.post_save.connect(_after_save, sender=cls, weak=False)
        signals.post_delete.connect(_after_delete, sender=cls, weak=False)
        signals.post_bulk_insert.connect(_after_bulk_insert, sender=cls, weak=False)
        signals.pre_delete.connect(_before_delete, sender=cls, weak=False)
        signals.pre_bulk_insert.connect(_before_bulk_insert, sender=cls, weak=False)
        if TENANT_OPTIONS & set(inherited):
            declare_tenant_model(cls)
        return cls


# A subclass adds to these rather than replacing them: narrowing what a parent
# hides by declaring one more path would silently unmask the parent's fields.
_ADDITIVE_OPTIONS = ("exclude", "mask_fields")


def _inherit(inherited: dict[str, Any], options: Mapping[str, Any]) -> None:
    """Overlay ``options`` on ``inherited``: privacy paths add up, the rest
    replaces."""
    for key, value in options.items():
        before = inherited.get(key)
        if key in _ADDITIVE_OPTIONS and before and value is not None:
            inherited[key] = list(dict.fromkeys([*before, *value]))
        else:
            inherited[key] = value


def _check_field_names(cls: type[Any], options: ActivityOptions) -> None:
    """Every path in the class's options must start at a declared field, named
    by its attribute name: a typo -- or a stored (``db_field``) name, which no
    change path carries -- in ``mask_fields`` would store the value it meant to
    hide."""
    if cls._dynamic:
        return

    named: list[tuple[str, str]] = [
        (option, path)
        for option in ("track", "exclude", "mask_fields")
        for path in getattr(options, option) or ()
    ]
    singles = [
        (option, value)
        for option in ("user_field", "team_field")
        if (value := getattr(options, option)) is not None
    ]
    stored_tops = {field.db_field for field in cls._fields.values()}
    for option, path in [*named, *singles]:
        top = path.split(".", 1)[0]
        if top not in cls._fields and not (
            (option, path) in singles and top in stored_tops
        ):
            if top in stored_tops:
                _refuse_stored_name(cls, option, path, cls, top)
            raise ConfigurationError(
                f"{cls.__name__}.meta['activity']: option {option!r}: {path!r} "
                f"names no field of {cls.__name__}; declared fields are "
                f"{', '.join(sorted(cls._fields))}"
            )
    for option, path in named:
        for owner, part, stored in walk_path(cls, path, by_attribute=True):
            if stored is None and owner is not None:
                _refuse_stored_name(cls, option, path, owner, part)
        misplaced = _field_in_key_place(cls, path)
        if misplaced is not None:
            at, name = misplaced
            parts = path.split(".")
            suggested = ".".join([*parts[:at], ANY_KEY, name, *parts[at + 1 :]])
            raise ConfigurationError(
                f"{cls.__name__}.meta['activity']: option {option!r}: {path!r} puts "
                f"the field {name!r} where a map key belongs; write {suggested!r} "
                f"for that field of every value"
            )


def _field_in_key_place(cls: type[Any], path: str) -> tuple[int, str] | None:
    """``(index, attribute name)`` when a part right after a map field names a
    field of the map's embedded values instead of a key, else ``None``."""
    state: tuple[str, Any] = ("doc", cls)
    for index, part in enumerate(path.split(".")):
        while state[0] == "list" and not part.isdigit():
            state = state_below(state[1])
        kind, holder = state
        if kind == "doc":
            field = holder._fields.get(part)
            if field is None:
                return None
            state = state_below(field)
        elif kind == "key":
            below = state_below(holder) if holder is not None else ("free", None)
            if part != ANY_KEY and below[0] == "doc":
                for by_attribute in (True, False):
                    field = field_named(below[1], part, by_attribute)
                    if field is not None:
                        return index, field.name
            state = below
        elif kind == "list":
            state = state_below(holder)
        else:
            return None

    return None


def _refuse_stored_name(
    cls: type[Any], option: str, path: str, owner: Any, part: str
) -> None:
    for name, field in owner._fields.items():
        if field.db_field == part and name != part:
            raise ConfigurationError(
                f"{cls.__name__}.meta['activity']: option {option!r}: {path!r} uses "
                f"the stored name {part!r}; use the attribute name {name!r}, not "
                f"the stored name {part!r}"
            )


def _with_stored_variants(cls: type[Any], options: ActivityOptions) -> ActivityOptions:
    """Add to ``track``, ``exclude`` and ``mask_fields`` the spellings that
    match inside recorded values.

    Change paths use attribute names, but a recorded value keeps the stored
    names of the fields inside it: ``where.city`` (``city`` stored as ``c``)
    must also match the key ``c`` of a whole ``where`` value, so the path
    ``where.c`` is added.
    """
    update: dict[str, tuple[str, ...]] = {}
    for option in ("track", "exclude", "mask_fields"):
        paths = getattr(options, option)
        if not paths:
            continue
        expanded = dict.fromkeys(paths)
        for path in paths:
            expanded.update(dict.fromkeys(_stored_spellings(cls, path)))
        if len(expanded) > len(paths):
            update[option] = tuple(expanded)

    return options.model_copy(update=update) if update else options


def _stored_spellings(cls: type[Any], path: str) -> list[str]:
    """``a.b.c`` -> ``a.b.C`` and ``a.B.C`` (upper case: stored names)."""
    walked = list(walk_path(cls, path, by_attribute=True))
    names = [part for _, part, _ in walked]
    stored = [part if other is None else other for _, part, other in walked]
    return [".".join(names[:keep] + stored[keep:]) for keep in range(1, len(names))]


def _check_trackable(cls: type[Any]) -> None:
    if issubclass(cls, Activity) or (
        cls._meta.get("collection") == current_settings().collection
    ):
        raise TrackingError(
            f"{cls.__name__}: activities are never tracked; store the model in "
            f"a collection other than {current_settings().collection!r}"
        )
    queryset_class = cls._meta.get("queryset_class", QuerySet)
    if not issubclass(queryset_class, TrackedQuerySet):
        raise TrackingError(
            f"{cls.__name__}: meta['queryset_class'] {queryset_class.__name__} must "
            "subclass mongoengine_activity.TrackedQuerySet, so deletes are tracked"
        )


# --- the base class


class TrackedDocument(Document, metaclass=TrackedDocumentMetaclass):  # type: ignore[misc]
    """A ``Document`` whose creates, updates and deletes are logged as activities.

    Subclass it instead of ``Document`` and optionally set ``meta["activity"]``
    (see :class:`~mongoengine_activity.ActivityOptions`). ``save(track=False)``
    and ``delete(track=False)`` skip tracking for one call.
    """

    meta = {"abstract": True, "queryset_class": TrackedQuerySet}

    _activity_raw: ClassVar[dict[str, Any]] = {}
    _activity_resolved: ClassVar[tuple[int, ActivityOptions] | None] = None
    _activity_paths: ClassVar[PathNames]
    _activity_copied: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def activity_options(cls) -> ActivityOptions:
        """The options in force for this class: ``configure()`` defaults + meta."""
        resolved = cls._activity_resolved
        version = settings_version()
        if resolved is None or resolved[0] != version:
            options = _with_stored_variants(
                cls,
                resolve_options(cls._activity_raw, f"{cls.__name__}.meta['activity']"),
            )
            cls._activity_resolved = resolved = (version, options)

        return resolved[1]

    @classmethod
    def history(cls, pk: Any) -> History:
        """This document's activities and its tracked fields at any moment:
        ``Order.history(pk).at(when)``."""
        from .history import History

        return History(cls, pk)

    @classmethod
    def _from_son(
        cls,
        son: Mapping[str, Any],
        _auto_dereference: bool = True,
        created: bool = False,
    ) -> Any:
        document = super()._from_son(son, _auto_dereference, created)
        if not created:
            image = _image_of(document, son)
            object.__setattr__(document, "_activity_image", image)
            sink = _load_sink.get()
            if sink is not None:
                sink.append(image)

        return document

    def save(self, *args: Any, track: bool = True, **kwargs: Any) -> Any:
        if track:
            return super().save(*args, **kwargs)
        with tracking_disabled():
            return super().save(*args, **kwargs)

    def delete(self, *args: Any, track: bool = True, **kwargs: Any) -> None:
        token = _delete_probe.set(_DeleteProbe())
        try:
            if track:
                super().delete(*args, **kwargs)
            else:
                with tracking_disabled():
                    super().delete(*args, **kwargs)
        finally:
            _delete_probe.reset(token)

    def reload(self, *fields: Any, **kwargs: Any) -> Any:
        with _capturing_loads() as loaded:
            result = super().reload(*fields, **kwargs)
        if loaded:
            self._refresh_image(loaded[-1], only=_stored_names(self, fields))

        return result

    def modify(self, query: Any = None, **update: Any) -> bool:
        with _capturing_loads() as loaded:
            modified: bool = super().modify(query, **update)
        if modified and loaded:
            self._refresh_image(loaded[-1], only=None)

        return modified

    def update(self, **kwargs: Any) -> Any:
        from .querysets import capturing_after_images

        with capturing_after_images() as images:
            result = super().update(**kwargs)
        if images and self.pk is not None:
            self._refresh_image(images[-1], only=None)

        return result

    # MongoEngine's save helpers, wrapped to capture what the save wrote.

    def _save_create(
        self, doc: Mapping[str, Any], force_insert: bool, write_concern: Any
    ) -> Any:
        outcome = self.__dict__.get("_activity_outcome")
        if force_insert or "_id" not in doc or outcome is None:
            object_id = super()._save_create(doc, force_insert, write_concern)
            if outcome is not None:
                outcome.written = doc
            return object_id

        # Mirrors MongoEngine: replace by _id, insert if nothing was there. The
        # replaced document tells whether the save really created anything.
        collection = self._get_collection()
        with set_write_concern(collection, write_concern) as wc_collection:
            select = self._integrate_shard_key(doc, {"_id": doc["_id"]})
            replaced = wc_collection.find_one_and_replace(select, doc)
            object_id = (
                doc["_id"] if replaced else wc_collection.insert_one(doc).inserted_id
            )
        outcome.written = doc
        outcome.replaced = replaced
        return object_id

    def _get_update_doc(self) -> dict[str, Any]:
        update: dict[str, Any] = super()._get_update_doc()
        outcome = self.__dict__.get("_activity_outcome")
        if outcome is not None:
            outcome.update = update

        return update

    def _save_update(
        self, doc: Mapping[str, Any], save_condition: Any, write_concern: Any
    ) -> Any:
        result = super()._save_update(doc, save_condition, write_concern)
        outcome = self.__dict__.get("_activity_outcome")
        if outcome is not None:
            outcome.written = doc

        return result

    def _refresh_image(self, son: Mapping[str, Any], *, only: set[str] | None) -> None:
        if only is None:
            image: Mapping[str, Any] = son
        else:
            image = dict(self.__dict__.get("_activity_image") or {})
            for key in only:
                if key in son:
                    image[key] = son[key]
                else:
                    image.pop(key, None)
        object.__setattr__(self, "_activity_image", image)


class TrackedDynamicDocument(TrackedDocument, DynamicDocument):  # type: ignore[misc]
    """A tracked ``DynamicDocument``: undeclared fields are tracked too, after
    the declared ones."""

    meta = {"abstract": True, "queryset_class": TrackedQuerySet}


def _image_of(document: Any, son: Mapping[str, Any]) -> Mapping[str, Any]:
    """The before-image of a loaded document: the raw son itself, copying only
    values the document may share containers with."""
    copied = type(document)._activity_copied
    if document._dynamic:
        declared = {field.db_field for field in document._fields.values()}
        copied = copied | {key for key in son if key not in declared}
    if not copied or copied.isdisjoint(son):
        return son

    image = dict(son)
    for key in copied & image.keys():
        image[key] = normalize(image[key])
    return image


def _stored_names(document: Any, fields: Iterable[str]) -> set[str] | None:
    names = {
        document._fields[name].db_field for name in fields if name in document._fields
    }
    return names or None


# --- receivers


def _before_save(sender: Any, document: Any, **_: Any) -> None:
    _require_tenant(sender, document, "save")
    object.__setattr__(document, "_activity_outcome", _SaveOutcome())


def _before_delete(sender: Any, document: Any, **_: Any) -> None:
    _require_tenant(sender, document, "delete")


def _before_bulk_insert(sender: Any, documents: list[Any], **_: Any) -> None:
    for document in documents:
        _require_tenant(sender, document, "objects.insert")


def _require_tenant(sender: Any, document: Any, kind: str) -> None:
    """Refuse a tracked write whose activity would have no tenant, before the
    document itself is written."""
    if not _should_track(sender):
        return
    options: ActivityOptions = sender.activity_options()
    if not options.multi_tenant:
        return

    from_document = document_tenant(sender, document._data, options, stored=False)
    if from_document is None and kind != "objects.insert":
        from_document = tenant_not_loaded(sender, document, options)
    write_tenant(
        options,
        from_document,
        context_value("tenant"),
        where=f"{sender.__name__}.{kind}()",
        warn=False,
    )


def _after_save(sender: Any, document: Any, created: bool, **_: Any) -> None:
    outcome: _SaveOutcome | None = document.__dict__.pop("_activity_outcome", None)
    if outcome is None or outcome.written is None:
        return

    image: Mapping[str, Any] = document.__dict__.get("_activity_image") or {}
    written, replaced = outcome.written, outcome.replaced
    if replaced is None and not created:
        update = _normalized(outcome.update or {})
        _set_image(document, _applied(image, update))
        if _should_track(sender):
            _log_changes(sender, document, _diff_update(image, update), written)
        return

    after = normalize(dict(written))
    _set_image(document, after)
    if not _should_track(sender):
        return
    if replaced is None:
        # The image's normalised values serve the changes too; the raw form
        # is what user, team and tenant fields are read from.
        log_stored(sender, document, "create", {}, after, values=written, ready=True)
        return

    log_stored(sender, document, "update", replaced, written)


def _log_changes(
    sender: Any, document: Any, changes: list[Change], values: Mapping[str, Any]
) -> None:
    options: ActivityOptions = sender.activity_options()
    changes = _tracked(sender, options, changes)
    if changes:
        _log(sender, document, options, "update", changes, values)


def _after_bulk_insert(sender: Any, documents: list[Any], **_: Any) -> None:
    """``QuerySet.insert([...])``: one create per inserted document, no read."""
    for document in documents:
        if document is None:
            continue
        written = document.to_mongo()
        _set_image(document, normalize(dict(written)))
        if _should_track(type(document)):
            _log_whole(type(document), document, "create", written)


def _after_delete(sender: Any, document: Any, **_: Any) -> None:
    probe = _delete_probe.get()
    if probe is not None and not probe.deleted:
        return

    image = document.__dict__.get("_activity_image")
    if image is None:
        image = document.to_mongo()
    _set_image(document, None)
    if _should_track(sender):
        _log_whole(sender, document, "delete", image)


def _log_whole(
    sender: Any, document: Any, kind: str, values: Mapping[str, Any]
) -> None:
    """Log a create (every field as ``to``) or a delete (every field as ``from``)."""
    if kind == "create":
        log_stored(sender, document, kind, {}, values)
    else:
        log_stored(sender, document, kind, values, {})


def stored_changes(
    sender: Any,
    kind: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    ready: bool = False,
) -> list[Change]:
    """The tracked changes between two stored forms of a ``sender`` document.

    A create lists every field of ``after`` as ``to``, a delete every field of
    ``before`` as ``from``, and an update diffs the two. ``ready`` says the
    forms are normalised already. Shared by saves, queryset updates and change
    streams.
    """
    if not ready:
        before, after = normalize(dict(before)), normalize(dict(after))
    if kind == "update":
        changes = diff_fields(before, after, _ordered_keys(sender, before, after))
    else:
        values, side = (after, "to") if kind == "create" else (before, "from")
        changes = [
            {"path": key, "from": None, "to": None, side: values[key]}
            for key in _ordered_keys(sender, values, {})
            if values.get(key) is not None
        ]

    return _tracked(sender, sender.activity_options(), changes)


def log_stored(
    sender: Any,
    document: Any,
    kind: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    values: Mapping[str, Any] | None = None,
    ready: bool = False,
) -> None:
    """Log ``kind`` for ``document`` (anything with a ``pk``) from its stored
    forms; an update that changed nothing tracked writes nothing. User, team
    and tenant fields are read from ``values`` (by default the form that
    exists: ``before`` for a delete, else ``after``)."""
    changes = stored_changes(sender, kind, before, after, ready=ready)
    if kind == "update" and not changes:
        return

    if values is None:
        values = before if kind == "delete" else after
    _log(sender, document, sender.activity_options(), kind, changes, values)


def _should_track(sender: Any) -> bool:
    return (
        tracking_enabled() and not dispatching() and sender.activity_options().enabled
    )


def _set_image(document: Any, image: Mapping[str, Any] | None) -> None:
    object.__setattr__(document, "_activity_image", image)


def _normalized(update: Mapping[str, Any]) -> dict[str, Any]:
    """A ``$set``/``$unset`` update with its values normalised once, for both
    the diff and the new image."""
    values = update.get("$set", {})
    return {
        "$set": {path: normalize(value) for path, value in values.items()},
        "$unset": dict(update.get("$unset", {})),
    }


def _diff_update(image: Mapping[str, Any], update: Mapping[str, Any]) -> list[Change]:
    """Diff what a normalised ``$set``/``$unset`` update wrote against the image."""
    changes: list[Change] = []
    writes = [(path, value) for path, value in update.get("$set", {}).items()]
    writes.extend((path, None) for path in update.get("$unset", {}))
    for path, new in writes:
        old = _get_path(image, path)
        changes.extend(diff(None if old is _MISSING else normalize(old), new, path))

    return changes


def _applied(image: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """The image after a normalised ``update``, as MongoDB applies it; the
    input is untouched."""
    result = dict(image)
    for path, value in update.get("$set", {}).items():
        _write_path(result, path.split("."), value, unset=False)
    for path in update.get("$unset", {}):
        _write_path(result, path.split("."), None, unset=True)

    return result


def _write_path(holder: Any, parts: list[str], value: Any, *, unset: bool) -> None:
    """Set or unset ``parts`` below ``holder``, copying each container on the
    way so the previous image is never changed."""
    key = parts[0]
    if isinstance(holder, list):
        if not key.isdigit():
            return
        index = int(key)
        if len(parts) == 1:
            if index >= len(holder):
                if unset:
                    return
                holder.extend([None] * (index - len(holder) + 1))
            # $unset of an array element leaves null in its place.
            holder[index] = None if unset else value
            return
        if index >= len(holder):
            return
        child = holder[index]
    else:
        if len(parts) == 1:
            if unset:
                holder.pop(key, None)
            else:
                holder[key] = value
            return
        child = holder.get(key)
        if child is None and unset:
            return
        if child is None:
            child = {}

    copy = (
        list(child)
        if isinstance(child, list)
        else dict(child)
        if isinstance(child, Mapping)
        else None
    )
    if copy is None:
        return
    if isinstance(holder, list):
        holder[int(key)] = copy
    else:
        holder[key] = copy
    _write_path(copy, parts[1:], value, unset=unset)


@dataclass(frozen=True, slots=True)
class _FieldOrder:
    fields_ordered: tuple[str, ...]
    positions: dict[str, int]
    declared: list[str]


def _field_order(sender: Any) -> _FieldOrder:
    """Field positions and stored names, cached per class (runs on every save)."""
    cached: _FieldOrder | None = sender.__dict__.get("_activity_field_order")
    if cached is None or cached.fields_ordered is not sender._fields_ordered:
        cached = _FieldOrder(
            sender._fields_ordered,
            {name: index for index, name in enumerate(sender._fields_ordered)},
            [sender._fields[name].db_field for name in sender._fields_ordered],
        )
        type.__setattr__(sender, "_activity_field_order", cached)

    return cached


@functools.lru_cache(maxsize=4096)
def _covered(paths: tuple[str, ...], path: str) -> bool:
    return matcher_for(paths).covers(path)


def _ordered_keys(
    sender: Any, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[str]:
    """Stored top-level keys in declaration order, then any undeclared ones."""
    declared = _field_order(sender).declared
    seen = set(declared)
    extra = [key for key in (*before, *after) if key not in seen and not seen.add(key)]  # type: ignore[func-returns-value]
    return [key for key in (*declared, *extra) if key not in _HIDDEN_KEYS]


def _tracked(
    sender: Any, options: ActivityOptions, changes: list[Change]
) -> list[Change]:
    """Rename stored paths to attribute paths, apply ``track`` and ``exclude``,
    sort by field.

    A change above a tracked or excluded path (a create's whole ``card`` under
    ``exclude: ["card.cvv"]``) keeps only, or loses, those parts of its values;
    it is dropped when nothing tracked remains or its two sides become equal.
    """
    names = sender._activity_paths
    order = _field_order(sender).positions
    track, exclude = options.track, options.exclude
    kept: list[tuple[int, int, Change]] = []
    for position, change in enumerate(changes):
        path = names(change["path"])
        top = path.split(".", 1)[0]
        if top in _HIDDEN_KEYS or top == sender._meta["id_field"]:
            continue
        if exclude and _covered(exclude, path):
            continue
        renamed: Change = {**change, "path": path}
        result: Change | None = renamed
        if track is not None and not _covered(track, path):
            below = _remainders(track, path)
            if not below:
                continue
            result = _reshaped(renamed, keep_paths, below)
        below = _remainders(exclude, path) if exclude else []
        if below and result is not None:
            result = _reshaped(result, drop_paths, below)
        if result is not None:
            kept.append((order.get(top, len(order)), position, result))
    kept.sort(key=lambda item: (item[0], item[1]))
    return [change for _, _, change in kept]


@functools.lru_cache(maxsize=4096)
def _remainders(paths: tuple[str, ...], path: str) -> list[tuple[str, ...]]:
    return matcher_for(paths).remainders(path)


def _reshaped(
    change: Change, reshape: Any, below: list[tuple[str, ...]]
) -> Change | None:
    before = reshape(change["from"], below)
    after = reshape(change["to"], below)
    if before == after:
        return None

    return {**change, "from": before, "to": after}


def _log(
    sender: Any,
    document: Any,
    options: ActivityOptions,
    kind: str,
    changes: list[Change],
    values: Mapping[str, Any],
) -> None:
    entity_type = options.entity_type_for(sender)
    verb = options.verb(sender, kind)
    extra: dict[str, Any] = {}
    # A create or update sets the user field on that very write, so it names
    # the actor. On a delete it only names who wrote the document last: the
    # acting user in the context wins, and the field is the fallback.
    if options.user_field:
        user = _field_value(sender, values, options.user_field)
        if user is not None:
            extra["fallback_user_id" if kind == "delete" else "user_id"] = user
    if options.team_field:
        team = _field_value(sender, values, options.team_field)
        if team is not None:
            extra["team_id"] = team
    if options.multi_tenant:
        extra["tenant"] = document_tenant(sender, values, options)

    son = build_son(
        type=verb,
        entity_type=entity_type,
        entity_id=document.pk,
        changes=changes,
        options=options,
        **extra,
    )
    write_activity(
        WriteRequest(
            son=son, sender=sender, options=options, on_error=on_error_for(options)
        ),
        want_result=False,
    )


def _field_value(sender: Any, values: Mapping[str, Any], attribute: str) -> Any:
    field = sender._fields.get(attribute)
    stored = field.db_field if field is not None else attribute
    value = values.get(stored)
    return None if value is None else normalize(value)
