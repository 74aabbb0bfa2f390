"""export_user_data: CSV, JSON, NDJSON and PDF, streamed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid
from typing import Any

import pytest
from bson import Decimal128, ObjectId, json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONOptions

from mongoengine_activity import Activity, ValidationError, log_activity
from mongoengine_activity._bson import restore
from mongoengine_activity.export import CSV_COLUMNS, safe_cell

from .models import Order

USER = ObjectId("65f000000000000000000007")
_READ_BACK = JSONOptions(
    tz_aware=False, uuid_representation=UuidRepresentation.STANDARD
)


def _stored() -> list[dict[str, Any]]:
    return [
        restore(raw)
        for raw in Activity._get_collection()
        .find()
        .sort([("createdAt", 1), ("_id", 1)])
    ]


def _log(type: str = "order_updated", user: Any = USER, **kwargs: Any) -> Activity:
    kwargs.setdefault("entity", ("Order", 1))
    activity = log_activity(type, user_id=user, on_error="raise", **kwargs)
    assert activity is not None
    return activity


def _export(user: Any = USER, **kwargs: Any) -> bytes:
    chunks = Activity.export_user_data(user, **kwargs)
    assert not isinstance(chunks, int)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=SUM(A1:A2)", "'=SUM(A1:A2)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
    ids=["equals", "plus", "minus", "at", "tab", "cr", "plain", "inner", "empty"],
)
def test_safe_cell(text: str, safe: str) -> None:
    assert safe_cell(text) == safe


def test_csv_reads_back_to_the_exact_values() -> None:
    user = 'ünï, "quoted"\nuser'
    when = dt.datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=dt.UTC)
    activity = _log(
        '=HYPERLINK("http://x")',
        user=user,
        entity=('Ørder, "big"', "@id\r\n2"),
        team_id="+team",
        event_id="-1",
        data={"note": 'line1\nline2, "x"', "emoji": "✓"},
        created_at=when,
    )

    rows = list(csv.reader(io.StringIO(_export(user, format="csv").decode("utf-8"))))

    assert rows == [
        list(CSV_COLUMNS),
        [
            str(activity.pk),
            "2026-03-01T12:30:15.123Z",
            '\'=HYPERLINK("http://x")',
            'Ørder, "big"',
            "'@id\r\n2",
            user,
            "'+team",
            "'-1",
            "[]",
            '{"note": "line1\\nline2, \\"x\\"", "emoji": "✓"}',
            "{}",
        ],
    ]


def test_csv_structured_cells_are_extended_json() -> None:
    _log(
        data={"total": Decimal128("9.99"), "id": ObjectId("65f000000000000000000001")},
        changes=[{"path": "qty", "from": 1, "to": 2}],
    )

    row = next(iter(csv.DictReader(io.StringIO(_export(format="csv").decode()))))

    assert json_util.loads(row["data"]) == {
        "total": Decimal128("9.99"),
        "id": ObjectId("65f000000000000000000001"),
    }
    assert json_util.loads(row["changes"]) == [{"path": "qty", "from": 1, "to": 2}]


_EVERY_TYPE = {
    "oid": ObjectId("65f000000000000000000001"),
    "decimal": Decimal128("12.50"),
    "when": dt.datetime(2026, 3, 1, 12, 30, 15, 123000),
    "bytes": b"\x00\xff",
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "big": 2**40,
    "float": 1.5,
    "none": None,
    "flag": True,
    "nested": {"list": [1, "two", {"three": [ObjectId("65f000000000000000000002")]}]},
}


def test_json_round_trips_every_bson_type() -> None:
    _log(data=_EVERY_TYPE, changes=[{"path": "x", "from": None, "to": _EVERY_TYPE}])
    _log(data={"second": True})

    loaded = json_util.loads(_export(format="json"), json_options=_READ_BACK)

    assert loaded == _stored()
    assert loaded[0]["meta"] == _EVERY_TYPE


def test_ndjson_is_one_document_per_line() -> None:
    _log(data=_EVERY_TYPE)
    _log(data={"second": True})

    lines = _export(format="ndjson").splitlines()

    assert [json_util.loads(line, json_options=_READ_BACK) for line in lines] == (
        _stored()
    )


def test_an_empty_export_is_valid() -> None:
    assert json_util.loads(_export(format="json")) == []
    assert _export(format="ndjson") == b""
    assert _export(format="csv").decode() == ",".join(CSV_COLUMNS) + "\r\n"


def test_writing_into_a_file_returns_the_count() -> None:
    _log()
    _log()
    fp = io.BytesIO()

    written = Activity.export_user_data(USER, format="ndjson", fp=fp)

    assert written == 2
    assert fp.getvalue() == _export(format="ndjson")


def test_only_the_users_activities_in_the_date_range_are_exported() -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old = _log(created_at=now - dt.timedelta(days=3))
    recent = _log(created_at=now - dt.timedelta(hours=1))
    _log(user=ObjectId())

    def ids(**kwargs: Any) -> list[Any]:
        return [doc["_id"] for doc in json_util.loads(_export(format="json", **kwargs))]

    assert ids() == [old.pk, recent.pk]
    assert ids(date_range=(now - dt.timedelta(days=1), None)) == [recent.pk]
    assert ids(date_range=(None, now - dt.timedelta(days=1))) == [old.pk]


def test_activities_about_deleted_entities_can_be_left_out() -> None:
    order = Order(status="new", placed_by="u-7")
    order.save()
    order.delete()
    kept = _log(user="u-7", entity=("Order", "still-here"))
    _log(user="u-7", entity=("Invoice", 9))
    _log("invoice_deleted", entity=("Invoice", 9), user="someone else")

    def exported(include_deleted: bool) -> list[Any]:
        text = _export("u-7", format="json", include_deleted=include_deleted)
        return [(doc["type"], doc["entity"]["id"]) for doc in json_util.loads(text)]

    assert exported(True) == [
        ("order_created", order.pk),
        ("order_deleted", order.pk),
        ("order_updated", "still-here"),
        ("order_updated", 9),
    ]
    assert exported(False) == [("order_updated", kept.entity.id)]


def test_the_export_reads_the_database_as_it_is_consumed() -> None:
    _log()
    chunks = Activity.export_user_data(USER, format="ndjson")
    _log()

    assert not isinstance(chunks, int)
    assert len(b"".join(chunks).splitlines()) == 2


def test_an_unknown_format_is_named() -> None:
    with pytest.raises(ValidationError, match="format must be 'csv', 'json'"):
        Activity.export_user_data(USER, format="xml")  # type: ignore[arg-type]


def test_a_bad_date_range_is_named() -> None:
    with pytest.raises(ValidationError, match="date_range must be a"):
        Activity.export_user_data(USER, date_range="yesterday")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("date_range", "named"),
    [
        (("2020-01-01", None), "str '2020-01-01'"),
        ((None, 1_600_000_000), "int 1600000000"),
        ((dt.date(2020, 1, 1), None), "date datetime.date(2020, 1, 1)"),
    ],
    ids=["string-start", "number-end", "date-start"],
)
def test_a_date_range_bound_that_is_not_a_datetime_is_named(
    date_range: Any, named: str
) -> None:
    with pytest.raises(
        ValidationError, match=re.escape(f"datetimes; either may be None, not {named}")
    ) as caught:
        Activity.export_user_data(USER, date_range=date_range)

    assert caught.value.field == "date_range"


def _pdf_text(data: bytes) -> tuple[int, str]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_the_pdf_report_has_a_summary_table() -> None:
    pytest.importorskip("fpdf")
    _log("order_created")
    _log("order_updated", changes=[{"path": "status", "from": "new", "to": "paid"}])
    _log("order_updated")

    pages, text = _pdf_text(_export(format="pdf"))

    assert pages == 1
    for expected in (
        "Activity export",
        f"User: {USER}",
        "Activities: 3",
        "Summary",
        "Activity type Count",
        "order_created 1",
        "order_updated 2",
        "Total 3",
        "status: new -> paid",
        "Page 1 of 1",
    ):
        assert expected in text


def test_a_long_pdf_report_spans_numbered_pages() -> None:
    pytest.importorskip("fpdf")
    for index in range(120):
        _log(f"step_{index % 4}")

    pages, text = _pdf_text(_export(format="pdf"))

    assert pages >= 3
    assert f"Page {pages} of {pages}" in text
    assert "Total 120" in text


def test_an_export_holds_only_the_tenant_in_context() -> None:
    from mongoengine_activity import TenantRequiredError, activity_context, configure

    configure(multi_tenant=True, tenant_field="tenantId")
    with activity_context(tenant="acme"):
        mine = _log()
    with activity_context(tenant="globex"):
        _log()

    with activity_context(tenant="acme"):
        exported = json_util.loads(_export(format="json"))
    with pytest.raises(TenantRequiredError, match="tenant"):
        _export(format="json")

    assert [doc["_id"] for doc in exported] == [mine.pk]
