"""Exporting a user's activities for auditors and data-subject requests.

Read side. Activities are read with one cursor in ``createdAt`` order and
encoded one at a time, so memory stays flat however many there are (except
for PDF, which is laid out in memory; see the docs' limitations).

- ``json``: one JSON array of MongoDB Extended JSON (relaxed) documents, so
  ObjectId, Decimal128, datetime, bytes and UUID survive a round trip through
  ``bson.json_util.loads``;
- ``ndjson``: the same documents, one per line;
- ``csv``: one row per activity; structured values as Extended JSON; any cell
  that a spreadsheet would read as a formula gets a leading apostrophe;
- ``pdf``: a readable report with a summary table (needs the ``pdf`` extra).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Literal

from bson import ObjectId, json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

from ._bson import normalize, truncate_ms
from ._canonical import canonical
from .errors import ValidationError
from .models import Activity, tracked_options

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_JSON_OPTIONS",
    "dumps",
    "export_user_data",
    "loads",
    "safe_cell",
]

EXPORT_JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.RELAXED,
    uuid_representation=UuidRepresentation.STANDARD,
    tz_aware=True,
    tzinfo=dt.UTC,
)
CSV_COLUMNS = (
    "id",
    "created_at",
    "type",
    "entity_type",
    "entity_id",
    "user_id",
    "team_id",
    "event_id",
    "changes",
    "data",
    "context",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CHUNK_BYTES = 64 * 1024
_BATCH = 1000
Format = Literal["csv", "json", "ndjson", "pdf"]


def safe_cell(text: str) -> str:
    """``text`` with a leading apostrophe when a spreadsheet would run it."""
    if text.startswith(_FORMULA_STARTS):
        return "'" + text

    return text


def _ejson(value: Any) -> str:
    return json_util.dumps(value, json_options=EXPORT_JSON_OPTIONS, ensure_ascii=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)

    return _ejson(value)


def _iso(value: dt.datetime) -> str:
    value = truncate_ms(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _csv_row(son: Mapping[str, Any]) -> list[str]:
    entity = son.get("entity") or {}
    values = (
        son.get("_id"),
        son.get("createdAt"),
        son.get("type"),
        entity.get("type"),
        entity.get("id"),
        son.get("userId"),
        son.get("teamId"),
        son.get("eventId"),
        son.get("changes") or [],
        son.get("meta") or {},
        son.get("context") or {},
    )
    return [safe_cell(_cell(value)) for value in values]


def _chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Join small pieces into chunks of about 64 KiB."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= _CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _csv_pieces(documents: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")

    def take() -> bytes:
        data = text.getvalue().encode("utf-8")
        text.seek(0)
        text.truncate()
        return data

    writer.writerow(CSV_COLUMNS)
    yield take()
    for son in documents:
        writer.writerow(_csv_row(son))
        yield take()


def _json_pieces(documents: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    yield b"["
    separator = b"\n"
    for son in documents:
        yield separator + _ejson(son).encode("utf-8")
        separator = b",\n"
    yield b"\n]\n"


def _ndjson_pieces(documents: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    for son in documents:
        yield _ejson(son).encode("utf-8") + b"\n"


def _query(
    user_id: Any,
    date_range: tuple[dt.datetime | None, dt.datetime | None] | None,
) -> dict[str, Any]:
    query: dict[str, Any] = {"userId": normalize(user_id)}
    if date_range is None:
        return query

    message = (
        "export_user_data(): date_range must be a (start, end) pair of "
        "datetimes; either may be None"
    )
    try:
        start, end = date_range
    except (TypeError, ValueError):
        raise ValidationError(message, field="date_range") from None
    for bound in (start, end):
        if bound is not None and not isinstance(bound, dt.datetime):
            raise ValidationError(
                f"{message}, not {type(bound).__name__} {bound!r}",
                field="date_range",
            )
    bounds: dict[str, Any] = {}
    if start is not None:
        bounds["$gte"] = truncate_ms(start)
    if end is not None:
        bounds["$lt"] = truncate_ms(end)
    if bounds:
        query["createdAt"] = bounds

    return query


def _without_deleted(
    documents: Iterable[dict[str, Any]], collection: Any, scope: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Drop activities about entities that have a delete activity, per batch."""
    verbs = {
        entity_type: sorted(
            {options.types.delete for options in models if options.types.delete}
        )
        for entity_type, models in tracked_options().items()
    }
    batch: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        by_type: dict[Any, list[Any]] = {}
        for son in batch:
            entity = son.get("entity") or {}
            by_type.setdefault(entity.get("type"), []).append(entity.get("id"))
        gone: set[bytes] = set()
        for entity_type, ids in by_type.items():
            custom = verbs.get(entity_type) or []
            found = collection.find(
                {
                    **scope,
                    "entity.type": entity_type,
                    "entity.id": {"$in": ids},
                    "$or": [
                        {"type": {"$in": custom}},
                        {"type": {"$regex": "_deleted$"}},
                    ],
                },
                {"entity": 1},
            )
            gone.update(_entity_key(son["entity"]) for son in found)
        for son in batch:
            if _entity_key(son.get("entity") or {}) not in gone:
                yield son
        batch.clear()

    for son in documents:
        batch.append(son)
        if len(batch) >= _BATCH:
            yield from flush()
    yield from flush()


def _entity_key(entity: Mapping[str, Any]) -> bytes:
    return canonical([entity.get("type"), entity.get("id")])


def _counting(
    documents: Iterable[dict[str, Any]],
    counter: list[int],
    progress: Callable[[int], Any] | None,
) -> Iterator[dict[str, Any]]:
    for son in documents:
        counter[0] += 1
        if progress is not None:
            progress(1)
        yield son


def _pieces(
    format: Format,
    documents: Iterable[dict[str, Any]],
    title: Mapping[str, Any],
) -> Iterator[bytes]:
    if format == "csv":
        return _csv_pieces(documents)
    if format == "json":
        return _json_pieces(documents)
    if format == "ndjson":
        return _ndjson_pieces(documents)

    from ._pdf import pdf_report

    return iter([pdf_report(documents, title)])


def export_user_data(
    user_id: Any,
    *,
    format: Format = "json",
    date_range: tuple[dt.datetime | None, dt.datetime | None] | None = None,
    include_deleted: bool = True,
    fp: IO[bytes] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[bytes] | int:
    """Export every activity of ``user_id``, oldest first.

    ``date_range`` is ``(start, end)``, start included, end excluded, either
    ``None`` for open. ``include_deleted=False`` leaves out activities about
    entities that have since been deleted: that have a delete activity (the
    model's ``types.delete`` verb, or any type ending in ``_deleted``).
    With ``fp`` (a binary file object) the export is written there and the
    number of activities is returned; without it, an iterator of ``bytes``
    chunks is returned, reading the database as it is consumed.
    """
    if format not in ("csv", "json", "ndjson", "pdf"):
        raise ValidationError(
            "export_user_data(): format must be 'csv', 'json', 'ndjson' or 'pdf', "
            f"not {format!r}",
            field="format",
        )

    # Under multi-tenancy: the tenant in context (strict isolation raises
    # without one), so an export never holds another tenant's activities.
    scope = Activity.objects.tenant_filter()
    query = {**_query(user_id, date_range), **scope}
    collection = Activity._get_collection()
    title = {"user_id": user_id, "date_range": date_range}
    counter = [0]

    def documents() -> Iterator[dict[str, Any]]:
        cursor = (
            collection.find(query)
            .sort([("createdAt", 1), ("_id", 1)])
            .batch_size(_BATCH)
        )
        found: Iterable[dict[str, Any]] = cursor
        if not include_deleted:
            found = _without_deleted(cursor, collection, scope)
        yield from _counting(found, counter, progress)

    chunks = _chunked(_pieces(format, documents(), title))
    if fp is None:
        return chunks

    for chunk in chunks:
        fp.write(chunk)
    return counter[0]


def loads(text: str | bytes) -> Any:
    """Read back a JSON or NDJSON line written by :func:`export_user_data`."""
    return json_util.loads(text, json_options=EXPORT_JSON_OPTIONS)


def dumps(value: Any) -> str:
    """Encode ``value`` as the export does (relaxed Extended JSON)."""
    return _ejson(value)
