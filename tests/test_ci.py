"""The CI workflow and the compose file: they parse and agree with the README.

Neither can run here (no Docker engine, no MongoDB server); these checks keep
them well-formed and in step with the documented commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER_URI = "mongodb://localhost:27017/?replicaSet=rs0&directConnection=true"


def _load(name: str) -> Any:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def test_compose_starts_a_single_node_replica_set_on_loopback() -> None:
    mongo = _load("compose.yaml")["services"]["mongo"]
    check = " ".join(mongo["healthcheck"]["test"])

    assert mongo["image"] == "mongo:7"
    assert mongo["command"][mongo["command"].index("--replSet") + 1] == "rs0"
    assert mongo["ports"] == ["127.0.0.1:27017:27017"]
    assert "rs.initiate(" in check
    assert "isWritablePrimary" in check


def test_workflow_runs_mongomock_matrix_server_lint_type_and_docs() -> None:
    workflow = _load(".github/workflows/tests.yml")
    jobs = workflow["jobs"]
    server_steps = [step.get("run", "") for step in jobs["server"]["steps"]]

    assert set(jobs) == {"mongomock", "server", "lint", "type", "docs"}
    assert jobs["mongomock"]["strategy"]["matrix"]["python-version"] == [
        "3.11",
        "3.12",
    ]
    assert jobs["server"]["env"]["MONGODB_URI"] == SERVER_URI
    assert "docker compose up -d --wait" in server_steps
    assert "python -m pytest" in server_steps


@pytest.mark.parametrize("page", ["README.md", "docs/backends.md"])
def test_documented_server_command_matches_ci(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")

    assert "docker compose up -d --wait" in text
    assert f"MONGODB_URI='{SERVER_URI}'" in text


def test_ci_runs_exactly_the_readme_test_command() -> None:
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    commands = [
        line.strip()
        for line in readme.splitlines()
        if line.startswith("python3 -m venv .venv") and "pytest" in line
    ]
    last = (root / ".ci" / "run").read_text().strip().splitlines()[-1]

    assert commands == [last]
