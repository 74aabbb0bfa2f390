"""The examples run and print what their docstrings promise."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"


def test_quickstart_prints_the_order_history() -> None:
    environment = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )

    assert result.stdout.splitlines() == [
        "order_created u-42 {'requestId': 'req-1'} ["
        "{'path': 'status', 'from': None, 'to': 'new'}, "
        "{'path': 'total', 'from': None, 'to': 10.0}, "
        "{'path': 'card', 'from': None, 'to': {'number': '***'}}]",
        "order_updated u-42 {'requestId': 'req-1'} "
        "[{'path': 'status', 'from': 'new', 'to': 'paid'}]",
        "order_shipped u-42 {'requestId': 'req-1'} []",
    ]
