"""What the commands share: connecting, and showing stored text safely."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import mongoengine
import pytest
from click.testing import CliRunner

from mongoengine_activity.cli import main
from mongoengine_activity.cli._table import cell, distinct_labels, terminal_text

from .conftest import _connect


@pytest.fixture
def reconnect() -> Iterator[None]:
    """The command replaces the default connection; the suite's comes back."""
    yield
    mongoengine.disconnect()
    _connect()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "command", [["feed"], ["stats"], ["tail", "--once"]], ids=["feed", "stats", "tail"]
)
def test_an_unreachable_server_is_one_clean_error(
    reconnect: None, command: list[str]
) -> None:
    port = _closed_port()
    uri = f"mongodb://ann:s3cret@127.0.0.1:{port}/shop"

    result = CliRunner().invoke(
        main, [*command, "--uri", uri, "--server-timeout", "0.2"]
    )

    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: cannot reach MongoDB at mongodb://127.0.0.1:{port}/shop: "
        f"127.0.0.1:{port}: "
    )
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    assert len(result.output.splitlines()) == 1


def test_an_invalid_uri_is_one_clean_error(reconnect: None) -> None:
    result = CliRunner().invoke(main, ["feed", "--uri", "http://127.0.0.1/"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid --uri http://127.0.0.1/: ")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("t\x1b[2Jclear", "t\\x1b[2Jclear"),
        ("O\nrder", "O\\nrder"),
        ("u\r\nx\ty", "u\\r\\nx\\ty"),
        ("\u202eevil", "\\u202eevil"),
        ("café ß", "café ß"),
        (123, "123"),
    ],
    ids=["escape", "newline", "crlf-tab", "bidi", "unicode", "int"],
)
def test_terminal_text_escapes_control_characters(value: object, text: str) -> None:
    assert terminal_text(value) == text
    assert cell(value) == text


def test_distinct_labels_show_types_only_when_ambiguous() -> None:
    assert distinct_labels(["ann", 123, None]) == ["ann", "123", "-"]
    assert distinct_labels([123, "123", "ann"]) == ["123", "'123'", "'ann'"]
