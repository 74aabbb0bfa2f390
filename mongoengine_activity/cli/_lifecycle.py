"""``mongoengine-activity prune`` and ``archive``: retention from the shell."""

from __future__ import annotations

import click

from ._common import connect, connect_option, main

_OLDER_THAN = click.option(
    "--older-than",
    required=True,
    help='Age limit: seconds or a duration such as "90d", "12h".',
)
_ENTITY_TYPE = click.option(
    "--entity-type", default=None, help="Only activities of this entity type."
)
_BATCH = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Activities per batch.",
)
_DRY_RUN = click.option(
    "--dry-run", is_flag=True, help="Count what would be touched; change nothing."
)


def _count(older_than: str, entity_type: str | None) -> int:
    from ..lifecycle import count_older

    try:
        return count_older(older_than, entity_type=entity_type)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None


@main.command()
@connect_option
@_OLDER_THAN
@_ENTITY_TYPE
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Delete at most this many.",
)
@_BATCH
@_DRY_RUN
def prune(
    uri: str | None,
    db: str,
    older_than: str,
    entity_type: str | None,
    limit: int | None,
    batch_size: int,
    dry_run: bool,
) -> None:
    """Delete activities older than --older-than, oldest first."""
    from ..lifecycle import iter_prune

    connect(uri, db)
    total = _count(older_than, entity_type)
    if limit is not None:
        total = min(total, limit)
    if dry_run:
        click.echo(f"would delete {total} activities")
        return

    deleted = 0
    with click.progressbar(length=total, label="pruning") as bar:
        for count in iter_prune(
            older_than, entity_type=entity_type, limit=limit, batch_size=batch_size
        ):
            deleted += count
            bar.update(count)
    click.echo(f"deleted {deleted} activities")


@main.command()
@connect_option
@_OLDER_THAN
@_ENTITY_TYPE
@_BATCH
@_DRY_RUN
def archive(
    uri: str | None,
    db: str,
    older_than: str,
    entity_type: str | None,
    batch_size: int,
    dry_run: bool,
) -> None:
    """Move activities older than --older-than to the archive collection.

    Crash-safe: each batch is copied, verified, then deleted; run the command
    again after an interruption to finish the move.
    """
    from ..lifecycle import iter_archive
    from ..options import current_settings

    connect(uri, db)
    total = _count(older_than, entity_type)
    target = current_settings().archive_collection
    if dry_run:
        click.echo(f"would move {total} activities to {target}")
        return

    moved = 0
    with click.progressbar(length=total, label="archiving") as bar:
        for part in iter_archive(
            older_than, entity_type=entity_type, batch_size=batch_size
        ):
            moved += part.deleted
            bar.update(part.deleted)
    click.echo(f"moved {moved} activities to {target}")
