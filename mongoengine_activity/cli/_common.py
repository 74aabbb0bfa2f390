"""What the commands share: the group, ``--uri`` and connecting."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click
import mongoengine
from pymongo.errors import ConfigurationError, ConnectionFailure

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULT_TIMEOUT = 10.0
# What the running command connected to, for its error message.
_target: dict[str, Any] = {"uri": None, "timeout": _DEFAULT_TIMEOUT}


def _without_credentials(uri: str) -> str:
    """``uri`` with any ``user:password@`` taken out."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^@/?#]*@", r"\1", uri)


def _reason(error: Exception) -> str:
    """The first, useful part of a pymongo error (no topology dump)."""
    text = str(error).split(", Timeout:", 1)[0]
    text = re.sub(r" \(configured timeouts: [^)]*\)", "", text)
    return " ".join(text.split())


class _Group(click.Group):
    """Turns "cannot connect" into one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectionFailure as error:
            where = _without_credentials(_target["uri"] or "MongoDB")
            raise click.ClickException(
                f"cannot reach MongoDB at {where}: {_reason(error)}"
            ) from None


@click.group(cls=_Group)
@click.version_option(package_name="mongoengine-activity")
def main() -> None:
    """Activity log and audit trail for MongoEngine."""


def _set_timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    _target["timeout"] = value
    return value


def connect_option(function: F) -> F:
    """Add ``--uri``, ``--db`` and ``--server-timeout`` to a command."""
    function = click.option(
        "--server-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_DEFAULT_TIMEOUT,
        show_default=True,
        expose_value=False,
        callback=_set_timeout,
        help="Seconds to wait for the server before giving up.",
    )(function)
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
    _target["uri"] = uri
    if uri:
        try:
            mongoengine.connect(
                db=db,
                host=uri,
                uuidRepresentation="standard",
                serverSelectionTimeoutMS=int(_target["timeout"] * 1000),
            )
        except ConfigurationError as error:
            raise click.ClickException(
                f"invalid --uri {_without_credentials(uri)}: {_reason(error)}"
            ) from None
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
