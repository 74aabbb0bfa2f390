"""``mongoengine-activity stats``: counts per verb, user, entity, day or hour."""

from __future__ import annotations

import click

from ._common import connect, connect_option, main
from ._table import distinct_labels, parse_range, table

_GROUPS = ("type", "user", "entity", "day", "hour")
_METRICS = ("count", "unique_users", "unique_entities")


@main.command()
@connect_option
@click.option(
    "--by",
    "group_by",
    type=click.Choice(_GROUPS),
    default="type",
    show_default=True,
    help="What to group by.",
)
@click.option(
    "--range",
    "date_range",
    default="last30days",
    show_default=True,
    help="today, last7days, last30days, all or START..END (UTC).",
)
@click.option(
    "--metric",
    "metrics",
    type=click.Choice(_METRICS),
    multiple=True,
    help="Metric to show (repeatable); all three by default.",
)
def stats(
    uri: str | None, db: str, group_by: str, date_range: str, metrics: tuple[str, ...]
) -> None:
    """Print activity counts as a table."""
    from ..errors import QueryError
    from ..models import Activity

    connect(uri, db)
    chosen = metrics or _METRICS
    try:
        results = Activity.objects.stats(
            group_by, date_range=parse_range(date_range), metrics=chosen
        )
    except QueryError as error:
        raise click.UsageError(str(error)) from error

    if not results:
        click.echo("No activities in that range.")
        return
    groups = distinct_labels([result["group"] for result in results])
    rows = [
        [group, *(result[metric] for metric in chosen)]
        for group, result in zip(groups, results, strict=True)
    ]
    click.echo(table((group_by, *chosen), rows))
