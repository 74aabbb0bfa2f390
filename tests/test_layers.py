"""The layers of the architecture import only downwards."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / "mongoengine_activity"

# module -> the first-party modules it may import. options and models are one
# layer (the model): configure() repoints Activity at the configured collection.
PURE = {"_bson", "_canonical", "diff", "masking", "durations", "errors"}
ALLOWED = {
    "_bson": set(),
    "_canonical": set(),
    "diff": {"_bson"},
    "masking": {"diff"},
    "durations": set(),
    "errors": set(),
    "options": PURE | {"models"},
    "models": PURE | {"options"},
    "context": PURE,
    "signals": PURE,
    "signing": PURE | {"models", "options"},
    "writer": PURE | {"models", "options", "context", "signals", "signing"},
    "compliance": PURE | {"models", "options", "signing"},
    "integrity": PURE | {"models", "options"},
    # The PDF edge is imported only when a PDF is asked for.
    "export": PURE | {"models", "options", "_pdf"},
    "tracking": PURE | {"models", "options", "context", "signals", "writer"},
}


def _first_party_imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_lower_layers(module: str) -> None:
    imported = _first_party_imports(PACKAGE / f"{module}.py")
    assert imported <= ALLOWED[module], imported - ALLOWED[module]
