"""The PDF report of :func:`~mongoengine_activity.export.export_user_data`.

An edge module: it needs fpdf2 (the ``pdf`` extra) and is imported only when a
PDF is asked for. The report is laid out in memory.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._bson import now_ms
from .errors import ConfigurationError

try:
    from fpdf import FPDF
    from fpdf.fonts import FontFace
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ConfigurationError(
        "a PDF export needs fpdf2: pip install 'mongoengine-activity[pdf]'"
    ) from error

__all__ = ["pdf_report"]

# A Unicode TrueType font, when the system has one; otherwise the built-in
# Helvetica, which can only show Latin-1 (other characters become "?").
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/arial.ttf",
)
_MAX_CELL = 300


class _Report(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="landscape", format="A4")
        self.unicode = False
        for candidate in _FONT_CANDIDATES:
            if Path(candidate).is_file():
                self.add_font("report", "", candidate)
                self.add_font("report", "B", candidate)
                self.unicode = True
                break
        self.family = "report" if self.unicode else "helvetica"
        self.set_auto_page_break(auto=True, margin=15)
        self.alias_nb_pages()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, "", 8)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")

    def text_of(self, value: str) -> str:
        if len(value) > _MAX_CELL:
            value = value[: _MAX_CELL - 1] + "…"
        if not self.unicode:
            value = value.encode("latin-1", "replace").decode("latin-1")

        return value


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")

    return "" if value is None else str(value)


def _changes(changes: Any) -> str:
    if not isinstance(changes, list) or not changes:
        return ""
    parts = []
    for change in changes:
        if isinstance(change, Mapping):
            parts.append(
                f"{change.get('path')}: {change.get('from')!s} -> {change.get('to')!s}"
            )

    return "; ".join(parts)


def pdf_report(
    documents: Iterable[Mapping[str, Any]], title: Mapping[str, Any]
) -> bytes:
    """Lay out ``documents`` as a report: heading, summary table, all activities."""
    rows: list[tuple[str, str, str, str]] = []
    types: Counter[str] = Counter()
    first: Any = None
    last: Any = None
    for son in documents:
        entity = son.get("entity") or {}
        kind = str(son.get("type"))
        types[kind] += 1
        created = son.get("createdAt")
        first = created if first is None else first
        last = created
        rows.append(
            (
                _when(created),
                kind,
                f"{entity.get('type')} {entity.get('id')}",
                _changes(son.get("changes")),
            )
        )

    pdf = _Report()
    pdf.set_title("Activity export")
    pdf.set_creator("mongoengine-activity")
    pdf.add_page()
    pdf.set_font(pdf.family, "B", 16)
    pdf.cell(0, 10, "Activity export", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 10)
    date_range = title.get("date_range") or (None, None)
    lines = (
        f"User: {title.get('user_id')}",
        f"Period: {_when(date_range[0]) or 'start'} to {_when(date_range[1]) or 'now'}",
        f"Activities: {len(rows)} "
        f"(first {_when(first) or '-'}, last {_when(last) or '-'})",
        f"Generated: {_when(now_ms())}",
    )
    for line in lines:
        pdf.cell(0, 6, pdf.text_of(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    heading = FontFace(emphasis="BOLD", fill_color=(230, 230, 230))
    pdf.set_font(pdf.family, "B", 12)
    pdf.cell(0, 8, "Summary", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 10)
    with pdf.table(
        col_widths=(3, 1), width=140, align="LEFT", headings_style=heading
    ) as table:
        table.row(("Activity type", "Count"))
        for kind, count in sorted(types.items()):
            table.row((pdf.text_of(kind), str(count)))
        table.row(("Total", str(len(rows))))
    pdf.ln(6)

    pdf.set_font(pdf.family, "B", 12)
    pdf.cell(0, 8, "Activities", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.family, "", 8)
    with pdf.table(col_widths=(2, 2, 3, 7), headings_style=heading) as table:
        table.row(("When", "Type", "Entity", "Changes"))
        for row in rows:
            table.row(tuple(pdf.text_of(cell) for cell in row))

    return bytes(pdf.output())
