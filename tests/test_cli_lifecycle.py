"""The ``prune`` and ``archive`` commands."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from click.testing import CliRunner

from mongoengine_activity import Activity
from mongoengine_activity.cli import _lifecycle, main
from mongoengine_activity.writer import log_activity


@pytest.fixture(autouse=True)
def same_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands connect by themselves; keep the test session's connection.
    monkeypatch.setattr(_lifecycle, "connect", lambda uri, db: None)


def seed() -> None:
    now = dt.datetime.now(dt.UTC)
    for days, kind in [(1, "Order"), (20, "Order"), (30, "Order"), (40, "Invoice")]:
        log_activity(
            "touched", entity=(kind, days), created_at=now - dt.timedelta(days=days)
        )


def run(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_prune_dry_run_changes_nothing() -> None:
    seed()

    result = run("prune", "--older-than", "10d", "--dry-run")

    assert result.output == "would delete 3 activities\n"
    assert Activity.objects.count() == 4


@pytest.mark.parametrize(
    ("extra", "deleted", "left"),
    [([], 3, 1), (["--entity-type", "Invoice"], 1, 3), (["--limit", "2"], 2, 2)],
    ids=["all", "entity-type", "limit"],
)
def test_prune(extra: list[str], deleted: int, left: int) -> None:
    seed()

    result = run("prune", "--older-than", "10d", "--batch-size", "1", *extra)

    assert result.output.splitlines()[-1] == f"deleted {deleted} activities"
    assert Activity.objects.count() == left


def test_archive_moves_and_reports() -> None:
    seed()

    dry = run("archive", "--older-than", "10d", "--dry-run")
    assert dry.output == "would move 3 activities to activities_archive\n"
    result = run("archive", "--older-than", "10d", "--batch-size", "2")

    assert result.output.splitlines()[-1] == "moved 3 activities to activities_archive"
    assert Activity._get_db()["activities_archive"].count_documents({}) == 3
    assert Activity.objects.count() == 1


def test_a_bad_duration_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["prune", "--older-than", "soon"])

    assert result.exit_code == 2
    assert "not a duration" in result.output
