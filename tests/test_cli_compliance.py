"""The export, verify and forget-user commands."""

from __future__ import annotations

import csv
import io
import pathlib
from typing import Any

import pytest
from bson import ObjectId
from click.testing import CliRunner

import mongoengine_activity as ma
from mongoengine_activity import Activity, log_activity
from mongoengine_activity.cli import _compliance, main
from mongoengine_activity.cli._compliance import parse_user_id

USER = ObjectId("65f000000000000000000007")


@pytest.fixture(autouse=True)
def test_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands use the test suite's connection instead of their own."""
    monkeypatch.setattr(_compliance, "connect", lambda uri, db: None)


def _log(user: Any = USER) -> None:
    log_activity("order_updated", entity=("Order", 1), user_id=user, on_error="raise")


@pytest.mark.parametrize(
    ("text", "id_type", "expected"),
    [
        ("65f000000000000000000007", "auto", USER),
        ("42", "auto", 42),
        ("-3", "auto", -3),
        ("ann", "auto", "ann"),
        ("42", "str", "42"),
        ("65f000000000000000000007", "str", "65f000000000000000000007"),
        ("7", "int", 7),
        ("65f000000000000000000007", "objectid", USER),
    ],
    ids=[
        "objectid",
        "int",
        "negative",
        "str",
        "forced-str",
        "hex-str",
        "forced-int",
        "oid",
    ],
)
def test_parse_user_id(text: str, id_type: str, expected: Any) -> None:
    assert parse_user_id(text, id_type) == expected


def test_export_writes_the_file(tmp_path: pathlib.Path) -> None:
    _log()
    _log()
    _log(user=ObjectId())
    target = tmp_path / "out.csv"

    result = CliRunner().invoke(
        main, ["export", str(USER), "--format", "csv", "-o", str(target)]
    )

    assert result.exit_code == 0, result.output
    assert "exported 2 activities" in result.output
    rows = list(csv.DictReader(io.StringIO(target.read_text("utf-8"))))
    assert [row["user_id"] for row in rows] == [str(USER), str(USER)]


def test_verify_reports_ok_and_failures() -> None:
    ma.configure(signing=True, signing_keys={"k1": b"secret"})
    _log()
    _log()
    runner = CliRunner()

    good = runner.invoke(main, ["verify"])
    Activity._get_collection().update_one({"sig.seq": 1}, {"$set": {"type": "x"}})
    bad = runner.invoke(main, ["verify"])

    assert good.exit_code == 0, good.output
    assert "2 signed activities in 1 streams, 0 redacted, 0 erased: ok" in good.output
    assert bad.exit_code == 1
    assert "1 problem(s)" in bad.output
    assert "tampered: stream" in bad.output and "fields changed: type" in bad.output


def test_forget_user_redacts_with_yes() -> None:
    ma.configure(pseudonym_key=b"p")
    _log()

    result = CliRunner().invoke(main, ["forget-user", str(USER), "--yes"])

    assert result.exit_code == 0, result.output
    assert "matched 1, redacted 1, deleted 0, values masked 1" in result.output
    assert Activity.objects.get().user_id.startswith("anon_")


def test_forget_user_asks_first() -> None:
    _log()

    result = CliRunner().invoke(
        main, ["forget-user", str(USER), "--strategy", "delete"], input="n\n"
    )

    assert result.exit_code == 1
    assert "delete 1 activities of ObjectId('65f000000000000000000007')?" in (
        result.output
    )
    assert Activity.objects.count() == 1


def test_export_takes_the_tenant_and_verify_reads_every_tenant(
    tmp_path: pathlib.Path,
) -> None:
    from mongoengine_activity import activity_context

    ma.configure(
        multi_tenant=True,
        tenant_field="tenantId",
        signing=True,
        signing_keys={"k1": b"secret"},
    )
    for tenant in ("acme", "globex"):
        with activity_context(tenant=tenant):
            _log()
    target = tmp_path / "acme.ndjson"
    runner = CliRunner()

    exported = runner.invoke(
        main,
        [
            "export",
            str(USER),
            "--format",
            "ndjson",
            "--tenant",
            "acme",
            "-o",
            str(target),
        ],
    )
    verified = runner.invoke(main, ["verify"])

    assert exported.exit_code == 0, exported.output
    assert [line.count('"acme"') for line in target.read_text().splitlines()] == [1]
    assert verified.exit_code == 0, verified.output
    assert "2 signed activities in 2 streams" in verified.output


def test_forget_user_covers_every_tenant() -> None:
    ma.configure(
        pseudonym_key=b"p",
        multi_tenant=True,
        tenant_field="orgId",
        tenant_isolation="strict",
    )
    for tenant in ("acme", "globex"):
        with ma.activity_context(tenant=tenant):
            _log()

    result = CliRunner().invoke(
        main, ["forget-user", str(USER), "--strategy", "delete", "--yes"]
    )

    assert result.exit_code == 0, result.output
    assert "matched 2, redacted 0, deleted 2" in result.output
    assert Activity._get_collection().count_documents({}) == 0
