"""``mongoengine-activity tail``: follow new activities as they are logged.

It polls: every ``--interval`` seconds it asks for activities after the last
one shown, by ``createdAt`` then ``_id``. An activity written later with an
earlier ``createdAt`` than one already shown (clocks of two processes apart,
or a ``created_at`` given by hand) is not shown.
"""

from __future__ import annotations

import time
from typing import Any

import click

from ._common import connect, connect_option, main
from ._table import cell, terminal_text

# Tests replace this to write activities between two polls.
_sleep = time.sleep
_BATCH = 500


def _line(activity: Any) -> str:
    entity = (
        f"{terminal_text(activity.entity.type)}:{terminal_text(activity.entity.id)}"
        if activity.entity
        else "-"
    )
    return "  ".join(
        (
            cell(activity.created_at),
            terminal_text(activity.type),
            entity,
            "-" if activity.user_id is None else terminal_text(activity.user_id),
            terminal_text(activity.render().message),
        )
    )


@main.command()
@connect_option
@click.option("--type", "types", multiple=True, help="Only this verb (repeatable).")
@click.option("--entity", "entities", multiple=True, help="Only this entity type.")
@click.option(
    "--last", default=10, show_default=True, help="Recent ones to show first."
)
@click.option(
    "--interval", default=1.0, show_default=True, help="Seconds between polls."
)
@click.option("--once", is_flag=True, help="Show the recent ones and stop.")
@click.option("--limit", type=int, default=None, help="Stop after this many lines.")
def tail(
    uri: str | None,
    db: str,
    types: tuple[str, ...],
    entities: tuple[str, ...],
    last: int,
    interval: float,
    once: bool,
    limit: int | None,
) -> None:
    """Print recent activities, oldest first, then follow new ones."""
    from ..models import Activity
    from ..pages import newer_than, position

    connect(uri, db)
    base = Activity.objects.global_feed(
        entities=entities or None, types=types or None, limit=None
    )
    recent = list(base.limit(max(last, 1)))
    at = position(recent[0]) if recent else None
    shown = 0
    for activity in reversed(recent[:last] if last > 0 else []):
        if limit is not None and shown >= limit:
            return
        click.echo(_line(activity))
        shown += 1

    try:
        while not once and (limit is None or shown < limit):
            _sleep(interval)
            for activity in newer_than(base, at).limit(_BATCH):
                click.echo(_line(activity))
                at = position(activity)
                shown += 1
                if limit is not None and shown >= limit:
                    return
    except KeyboardInterrupt:
        return
