"""The examples run and print what their docstrings promise."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def run(name: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    return result.stdout


def test_quickstart_prints_the_order_history() -> None:
    assert run("quickstart.py").splitlines() == [
        "order_created u-42 {'requestId': 'req-1'} ["
        "{'path': 'status', 'from': None, 'to': 'new'}, "
        "{'path': 'total', 'from': None, 'to': 10.0}, "
        "{'path': 'card', 'from': None, 'to': {'number': '***'}}]",
        "order_updated u-42 {'requestId': 'req-1'} "
        "[{'path': 'status', 'from': 'new', 'to': 'paid'}]",
        "order_shipped u-42 {'requestId': 'req-1'} []",
    ]


@pytest.mark.parametrize(
    ("name", "user", "ip", "agent"),
    [
        ("flask_app.py", "ann", "198.51.100.23", "ExampleBrowser/1.0"),
        ("fastapi_app.py", "bob", "198.51.100.42", "ExampleApp/2.0"),
    ],
    ids=["flask", "fastapi"],
)
def test_web_example_requests_write_activities_with_full_context(
    name: str, user: str, ip: str, agent: str
) -> None:
    rows = [json.loads(line) for line in run(name).splitlines()]

    assert [row["type"] for row in rows] == [
        "order_created",
        "order_updated",
        "order_shipped",
    ]
    assert rows[0]["context"]["requestId"] == "req-create"
    ship_request = rows[1]["context"]["requestId"]
    assert rows[2]["context"]["requestId"] == ship_request != "req-create"
    for row in rows:
        assert row["userId"] == user
        assert row["context"]["ip"] == ip
        assert row["context"]["userAgent"] == agent
