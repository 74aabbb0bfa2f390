"""What the commands share: the group, ``--uri`` and connecting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
import mongoengine

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@click.version_option(package_name="mongoengine-activity")
def main() -> None:
    """Activity log and audit trail for MongoEngine."""


def connect_option(function: F) -> F:
    """Add ``--uri`` and ``--db`` to a command."""
    function = click.option(
        "--db", default="mongoengine_activity", show_default=True, help="Database."
    )(function)
    return click.option(
        "--uri",
        envvar="MONGODB_URI",
        default=None,
        help="MongoDB URI; the embedded mongomock backend when omitted.",
    )(function)


def connect(uri: str | None, db: str) -> None:
    """Connect MongoEngine's default alias to ``uri``, or to mongomock."""
    mongoengine.disconnect()
    if uri:
        mongoengine.connect(db=db, host=uri, uuidRepresentation="standard")
        return

    try:
        import mongomock
    except ImportError as error:
        raise click.ClickException(
            "no --uri given and mongomock is not installed: "
            "pip install 'mongoengine-activity[cli]'"
        ) from error
    mongoengine.connect(
        db=db, mongo_client_class=mongomock.MongoClient, uuidRepresentation="standard"
    )
