"""``export``, ``verify`` and ``forget-user``: the compliance commands.

Signing keys and the pseudonym key come from the environment
(``MONGOENGINE_ACTIVITY_SIGNING_KEYS``, ``MONGOENGINE_ACTIVITY_PSEUDONYM_KEY``).
"""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import nullcontext
from typing import IO, Any, Literal, cast

import click
from bson import ObjectId

from ..context import activity_context
from ..export import Format as ExportFormat
from ..models import Activity
from ..tenancy import ALL_TENANTS
from ._common import connect, connect_option, main
from ._table import terminal_text

_ID_TYPES = click.Choice(["auto", "str", "int", "objectid"])


def parse_user_id(text: str, id_type: str) -> Any:
    """The user id as stored: ``auto`` reads 24 hex digits as an ObjectId and
    digits as an int, anything else as a string."""
    if id_type == "str":
        return text
    if id_type == "int" or (id_type == "auto" and text.lstrip("-").isdigit()):
        try:
            return int(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not an integer") from None
    if id_type == "objectid" or (id_type == "auto" and ObjectId.is_valid(text)):
        if not ObjectId.is_valid(text):
            raise click.BadParameter(f"{text!r} is not an ObjectId")
        return ObjectId(text)

    return text


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC)


@main.command("export")
@connect_option
@click.argument("user_id")
@click.option("--id-type", type=_ID_TYPES, default="auto", show_default=True)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "ndjson", "csv", "pdf"]),
    default="json",
    show_default=True,
)
@click.option("--since", type=click.DateTime(), help="From this UTC time on.")
@click.option("--until", type=click.DateTime(), help="Before this UTC time.")
@click.option(
    "--exclude-deleted",
    is_flag=True,
    help="Leave out activities about entities deleted since.",
)
@click.option(
    "-o", "--output", type=click.File("wb"), default="-", help="File; - is stdout."
)
@click.option("--tenant", help="The tenant to export from, with multi-tenancy.")
def export_command(
    uri: str | None,
    db: str,
    user_id: str,
    id_type: str,
    format_: str,
    since: dt.datetime | None,
    until: dt.datetime | None,
    exclude_deleted: bool,
    output: IO[bytes],
    tenant: str | None,
) -> None:
    """Export USER_ID's activities (a data-subject access request)."""
    connect(uri, db)
    user = parse_user_id(user_id, id_type)
    date_range = (_utc(since), _utc(until)) if since or until else None
    scope = activity_context(tenant=tenant) if tenant else nullcontext()
    with scope:
        total = Activity.objects(user_id=user).count()
        with click.progressbar(length=total, label="Exporting", file=sys.stderr) as bar:
            written = Activity.export_user_data(
                user,
                format=cast(ExportFormat, format_),
                date_range=date_range,
                include_deleted=not exclude_deleted,
                fp=output,
                progress=bar.update,
            )
    click.echo(f"exported {written} activities", err=True)


@main.command()
@connect_option
@click.option("--entity-type", help="Only streams of this entity type.")
@click.option(
    "--allow-pruned",
    is_flag=True,
    help="Accept streams whose oldest activities were pruned or archived.",
)
def verify(
    uri: str | None, db: str, entity_type: str | None, allow_pruned: bool
) -> None:
    """Verify signatures and hash chains; exit status 1 if anything failed."""
    connect(uri, db)
    # An audit covers every tenant (logged at WARNING under multi-tenancy).
    queryset = Activity.objects.all_tenants()
    if entity_type:
        queryset = queryset(__raw__={"entity.type": entity_type})
    total = queryset.count()
    with click.progressbar(length=total, label="Verifying", file=sys.stderr) as bar:
        report = queryset.verify_chain(allow_pruned=allow_pruned, progress=bar.update)

    click.echo(
        f"{report.activities} signed activities in {report.streams} streams, "
        f"{report.redacted} redacted, {report.erased} erased: "
        + ("ok" if report.ok else f"{len(report.problems)} problem(s)")
    )
    for problem in report.problems:
        where = f"stream {problem.stream}" if problem.stream else "activity"
        position = "" if problem.seq is None else f" at {problem.seq}"
        if problem.last_seq is not None and problem.last_seq != problem.seq:
            position += f"-{problem.last_seq}"
        ident = "" if problem.activity_id is None else f" ({problem.activity_id})"
        detail = f": {problem.detail}" if problem.detail else ""
        click.echo(terminal_text(f"  {problem.kind}: {where}{position}{ident}{detail}"))
    if not report.ok:
        sys.exit(1)


@main.command("forget-user")
@connect_option
@click.argument("user_id")
@click.option("--id-type", type=_ID_TYPES, default="auto", show_default=True)
@click.option(
    "--strategy",
    type=click.Choice(["redact", "delete"]),
    default="redact",
    show_default=True,
)
@click.option(
    "--remove-pii",
    is_flag=True,
    help="Remove PII keys instead of masking their values.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget_user_command(
    uri: str | None,
    db: str,
    user_id: str,
    id_type: str,
    strategy: str,
    remove_pii: bool,
    yes: bool,
) -> None:
    """Pseudonymise (or delete) USER_ID's activities."""
    connect(uri, db)
    user = parse_user_id(user_id, id_type)
    total = Activity.objects.all_tenants()(user_id=user).count()
    if not yes:
        click.confirm(f"{strategy} {total} activities of {user!r}?", abort=True)
    # An erasure from the command line covers every tenant, like the count.
    with (
        activity_context(tenant=ALL_TENANTS),
        click.progressbar(length=total, label="Forgetting", file=sys.stderr) as bar,
    ):
        result = Activity.forget_user(
            user,
            strategy=cast(Literal["redact", "delete"], strategy),
            preserve_structure=not remove_pii,
            progress=bar.update,
        )
    click.echo(
        f"matched {result.matched}, redacted {result.redacted}, "
        f"deleted {result.deleted}, values masked {result.values}"
    )
