"""The demo: a seeded shop scenario, run through the command line."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mongoengine
import pytest
from bson import Decimal128, ObjectId
from click.testing import CliRunner

from mongoengine_activity import current_settings
from mongoengine_activity.cli import main
from mongoengine_activity.demo import (
    _CATALOG,
    _DISCONTINUED,
    _NAMES,
    ACTIVITY_COLLECTION,
    DemoReport,
    format_value,
)

from .conftest import DB_NAME, _connect

# Activities the default scenario (seed 7, 300 steps) writes. The structural
# ones follow from the scenario's tables: one product_created per catalog
# entry, one customer_created per customer, one product_deleted per
# discontinued product; the others are pinned from the seeded run and must
# agree with the scenario's own tally of its operations.
SEED_7_COUNTS = {
    "comment_edited": 7,
    "comment_posted": 25,
    "comment_removed": 14,
    "customer_created": len(_NAMES),
    "customer_updated": 6,
    "invoice_sent": 10,
    "order_created": 47,
    "order_deleted": 10,
    "order_shipped": 20,
    "order_updated": 158,
    "payment_created": 34,
    "payment_deleted": 5,
    "payment_updated": 5,
    "product_created": len(_CATALOG),
    "product_deleted": len(_DISCONTINUED),
    "product_updated": 110,
}


@dataclass
class DemoRun:
    exit_code: int
    output: str
    report: DemoReport
    activities: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    collection_after: str


def run_demo(*args: str) -> DemoRun:
    """Run ``mongoengine-activity demo`` in a database of its own, then go back
    to the test database (the command connects the default alias itself)."""
    database = f"{DB_NAME}_demo"
    try:
        result = CliRunner().invoke(
            main,
            ["demo", "--db", database, *args],
            standalone_mode=False,
            catch_exceptions=False,
        )
        db = mongoengine.get_db()
        activities = list(db[ACTIVITY_COLLECTION].find())
        payments = list(db["demo_payments"].find())
        collection_after = current_settings().collection
        mongoengine.get_connection().drop_database(database)
    finally:
        mongoengine.disconnect()
        _connect()

    return DemoRun(
        exit_code=result.exit_code,
        output=result.output,
        report=result.return_value,
        activities=activities,
        payments=payments,
        collection_after=collection_after,
    )


@pytest.fixture(scope="module")
def seeded() -> Iterator[DemoRun]:
    yield run_demo()


def printed_counts(output: str) -> dict[str, tuple[int, int]]:
    table = output.split("Activities per type.", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^  ([a-z_]+) +(\d+) +(\d+)$", table, re.MULTILINE)
    return {verb: (int(logged), int(expected)) for verb, logged, expected in rows}


def test_demo_exits_zero(seeded: DemoRun) -> None:
    assert seeded.exit_code == 0
    assert "MISMATCH" not in seeded.output


def test_stored_counts_match_what_the_scenario_did(seeded: DemoRun) -> None:
    stored = Counter(activity["type"] for activity in seeded.activities)

    assert dict(stored) == dict(seeded.report.expected)
    assert dict(stored) == SEED_7_COUNTS
    assert sum(stored.values()) == 475
    assert seeded.report.operations == 343
    assert seeded.report.silent == {
        "only excluded fields changed": 31,
        "repeated event_id (written once)": 10,
        "save without changes": 6,
    }


def test_printed_counts_match_the_seed(seeded: DemoRun) -> None:
    counts = printed_counts(seeded.output)

    assert counts.pop("total") == (475, 475)
    assert counts == {verb: (n, n) for verb, n in SEED_7_COUNTS.items()}


def test_card_numbers_are_masked_in_output_and_log(seeded: DemoRun) -> None:
    numbers = seeded.report.card_numbers
    stored_activities = str(seeded.activities)

    assert len(numbers) == SEED_7_COUNTS["payment_created"]
    # The live payments hold their numbers, so the checks below are not empty.
    live = {payment["card"]["number"] for payment in seeded.payments}
    assert live <= set(numbers)
    assert len(live) == len(numbers) - SEED_7_COUNTS["payment_deleted"]
    for number in numbers:
        assert number not in seeded.output
        assert number not in stored_activities
        assert number[-8:] not in stored_activities
    cards = [
        change["to"]
        for activity in seeded.activities
        if activity["type"] == "payment_created"
        for change in activity["changes"]
        if change["path"] == "card"
    ]
    assert len(cards) == len(numbers)
    assert {card["number"] for card in cards} == {"***"}
    assert "number: ***" in seeded.output


def test_repeated_event_ids_are_written_once(seeded: DemoRun) -> None:
    event_ids = Counter(
        activity["eventId"] for activity in seeded.activities if "eventId" in activity
    )

    assert seeded.report.silent["repeated event_id (written once)"] > 0
    assert set(event_ids.values()) == {1}
    assert len(event_ids) == (
        SEED_7_COUNTS["order_shipped"] + SEED_7_COUNTS["invoice_sent"]
    )


def test_every_activity_carries_the_acting_user_and_request(
    seeded: DemoRun,
) -> None:
    assert all(activity["userId"] for activity in seeded.activities)
    assert all(
        re.fullmatch(r"req-\d{4}", activity["context"]["requestId"])
        for activity in seeded.activities
    )
    orders = [a for a in seeded.activities if a["entity"]["type"] == "Order"]
    automatic = [a for a in orders if a["type"].startswith("order_") and "teamId" in a]
    assert {a["teamId"] for a in automatic} == {"oslo", "bergen", "online"}


def test_nested_edits_are_logged_to_the_element(seeded: DemoRun) -> None:
    paths = {
        change["path"]
        for activity in seeded.activities
        if activity["type"] == "order_updated"
        for change in activity["changes"]
    }

    assert "shipping_address.city" in paths
    assert "notes.gift" in paths
    assert "notes.delivery" in paths or "notes.delivery.window" in paths
    assert any(re.fullmatch(r"items\.\d+\.qty", path) for path in paths)
    assert any(re.fullmatch(r"items\.\d+", path) for path in paths)
    assert "items" in paths  # a removed line item records the whole list
    assert "updated_at" not in paths  # excluded


def test_feed_is_newest_first_and_readable(seeded: DemoRun) -> None:
    feed = seeded.output.split("\n\n", 1)[0].splitlines()
    stamps = [line.split()[0] for line in feed[1:]]

    assert feed[0] == "Activity feed, newest first (40 of 475):"
    assert len(stamps) == 40
    assert stamps == sorted(stamps, reverse=True)
    assert "Decimal128(" not in seeded.output
    assert "ObjectId(" not in seeded.output
    assert re.search(r"History of order SO-\d+ \(Order \.\.[0-9a-f]{6}", seeded.output)
    assert re.search(r"^      status: new -> paid$", seeded.output, re.MULTILINE)


def test_demo_restores_the_activity_collection_setting(seeded: DemoRun) -> None:
    assert seeded.collection_after == "activities"
    assert current_settings().collection == "activities"


def test_demo_without_random_steps_still_balances() -> None:
    run = run_demo("--steps", "0", "--feed", "5")

    assert run.exit_code == 0
    assert dict(run.report.expected) == {
        "customer_created": len(_NAMES),
        "product_created": len(_CATALOG),
        "product_deleted": len(_DISCONTINUED),
    }
    assert Counter(a["type"] for a in run.activities) == run.report.expected
    assert "History of order" not in run.output


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "none"),
        (True, "yes"),
        (Decimal128("19.90"), "19.90"),
        (ObjectId("65f1a2b3c4d5e6f708192a3b"), "..192a3b"),
        (dt.datetime(2026, 3, 1, 12, 0, 1), "2026-03-01 12:00:01"),
        ("", '""'),
        ({"sku": "A1", "qty": 2}, "{sku: A1, qty: 2}"),
        ([1, Decimal128("2.5")], "[1, 2.5]"),
        ("x" * 60, "x" * 45 + "..."),
    ],
    ids=[
        "none",
        "bool",
        "decimal128",
        "object-id",
        "datetime",
        "empty-string",
        "dict",
        "list",
        "truncated",
    ],
)
def test_format_value(value: Any, shown: str) -> None:
    assert format_value(value) == shown
