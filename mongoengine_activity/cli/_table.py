"""Plain-text tables and argument parsing shared by the read commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click
from bson import ObjectId

from .._ranges import NAMED_RANGES

_MAX_CELL = 60


def terminal_text(value: Any) -> str:
    """``str(value)`` safe to print: every character a terminal could act on
    or that could fake a line (ESC and other controls, newlines, tabs,
    bidirectional overrides) is shown escaped, as ``repr`` would (``\\x1b``,
    ``\\n``)."""
    text = str(value)
    if text.isprintable():
        return text

    return "".join(
        char if char.isprintable() or char == " " else repr(char)[1:-1] for char in text
    )


def cell(value: Any) -> str:
    """One value as table text: ``-`` for nothing, controls escaped, long text
    cut short."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")

    text = terminal_text(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def distinct_labels(values: Sequence[Any]) -> list[str]:
    """Cells for ``values``; if two different values would read the same (the
    int ``123`` and the string ``"123"``), every one is shown as ``repr``."""
    labels = [cell(value) for value in values]
    seen: dict[str, Any] = {}
    for label, value in zip(labels, values, strict=True):
        if seen.setdefault(label, value) != value or type(seen[label]) is not type(
            value
        ):
            return ["-" if value is None else cell(repr(value)) for value in values]

    return labels


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned table with a header rule; numbers are right-aligned."""
    texts = [[cell(value) for value in row] for row in rows]
    widths = [
        max([len(header), *(len(row[index]) for row in texts)])
        for index, header in enumerate(headers)
    ]
    numeric = [
        bool(rows) and all(isinstance(row[index], int) for row in rows)
        for index in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if is_number else value.ljust(width)
            for value, width, is_number in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in texts)])


def parse_id(text: str) -> Any:
    """A command-line id as it is likely stored: an ObjectId for 24 hex digits,
    an int for digits, else the string."""
    if ObjectId.is_valid(text):
        return ObjectId(text)
    if text.isdigit():
        return int(text)

    return text


def parse_range(text: str) -> Any:
    """``today``, ``last7days``, ``last30days``, ``all`` or ``START..END`` (ISO
    dates or datetimes, UTC; either side may be empty)."""
    if text == "all":
        return None
    if text in NAMED_RANGES:
        return text

    start, dots, end = text.partition("..")
    try:
        if not dots:
            raise ValueError(text)
        return (
            dt.datetime.fromisoformat(start) if start else None,
            dt.datetime.fromisoformat(end) if end else None,
        )
    except ValueError as error:
        raise click.BadParameter(
            f"{terminal_text(text)!r}: use {', '.join(NAMED_RANGES)}, all or "
            "START..END (ISO dates or datetimes, UTC, either side may be "
            "empty), e.g. 2026-01-01..2026-02-01",
            param_hint="'--range'",
        ) from error
