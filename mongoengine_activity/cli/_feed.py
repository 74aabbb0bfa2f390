"""``mongoengine-activity feed``: the newest activities as a table."""

from __future__ import annotations

import click

from ._common import connect, connect_option, main
from ._table import cell, distinct_labels, parse_id, parse_range, table


@main.command()
@connect_option
@click.option("--user", help="Only this user's activities.")
@click.option("--team", help="Only this team's activities.")
@click.option("--entity", help="An entity type (Order) or one document (Order:ID).")
@click.option("--type", "types", multiple=True, help="Only this verb (repeatable).")
@click.option("--search", "text", help="Text to look for (taken literally).")
@click.option(
    "--range",
    "date_range",
    default="all",
    show_default=True,
    help="today, last7days, last30days, all or START..END (UTC).",
)
@click.option("--limit", default=20, show_default=True, help="Rows to show.")
def feed(
    uri: str | None,
    db: str,
    user: str | None,
    team: str | None,
    entity: str | None,
    types: tuple[str, ...],
    text: str | None,
    date_range: str,
    limit: int,
) -> None:
    """Print the newest activities, newest first."""
    from ..errors import QueryError
    from ..models import Activity

    connect(uri, db)
    entity_type, _, entity_id = (entity or "").partition(":")
    queryset = Activity.objects
    try:
        if user is not None:
            queryset = queryset.filter(__raw__={"userId": parse_id(user)})
        if team is not None:
            queryset = queryset.filter(__raw__={"teamId": parse_id(team)})
        if entity_id:
            queryset = queryset.entity_history(
                entity_type, parse_id(entity_id), types=types or None, limit=limit
            )
        queryset = queryset.search(
            text,
            date_range=parse_range(date_range),
            types=types or None,
            entities=entity_type or None,
            limit=limit,
        )
        activities = list(queryset)
    except QueryError as error:
        raise click.UsageError(str(error)) from error

    entities = distinct_labels(
        [activity.entity.id if activity.entity else None for activity in activities]
    )
    users = distinct_labels([activity.user_id for activity in activities])
    rows = [
        (
            activity.created_at,
            activity.type,
            f"{cell(activity.entity.type)}:{entity}" if activity.entity else None,
            user,
            activity.render().message,
        )
        for activity, entity, user in zip(activities, entities, users, strict=True)
    ]

    if not rows:
        click.echo("No activities.")
        return
    click.echo(table(("when (UTC)", "type", "entity", "user", "message"), rows))
