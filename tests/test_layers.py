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
    "models": PURE | {"options", "tenancy"},
    "_paths": set(),
    # Part of the model layer; reads are scoped by the tenant in the context.
    "tenancy": PURE | {"options", "context"},
    "context": PURE,
    "signals": PURE,
    "limits": PURE | {"models", "options", "tenancy"},
    "lifecycle": PURE | {"models", "options"},
    "write_behind": PURE | {"models", "writer", "bulk"},
    "writer": PURE
    | {"models", "options", "context", "signals", "limits", "lifecycle"}
    | {"write_behind", "tenancy", "signing"},
    "bulk": PURE | {"models", "signals", "writer"},
    "tracking": PURE
    | {"_paths", "models", "options", "context", "signals", "writer"}
    | {"querysets", "history", "tenancy"},
    "querysets": PURE
    | {"models", "options", "context", "tenancy", "tracking", "writer"},
    # The read side: it reads fields' names through the model layer's _paths.
    "history": PURE | {"_paths", "models", "tenancy"},
    "signing": PURE | {"models", "options", "tenancy"},
    "compliance": PURE | {"models", "options", "signing", "tenancy"},
    "integrity": PURE | {"models", "options"},
    # The PDF edge is imported only when a PDF is asked for.
    "export": PURE | {"models", "options", "_pdf"},
    "_ranges": {"_bson", "errors"},
    "feeds": PURE | {"_ranges", "models"},
    "pages": PURE | {"feeds", "models", "options"},
    "stats": PURE | {"_ranges", "models"},
    "templates": PURE,
    "changestreams": PURE
    | {"models", "options", "context", "signals", "writer", "tracking", "tenancy"},
}

# The feed helpers are methods of Activity.objects, but live in the read side:
# models may import the read side inside a method (when it is called) or for
# type hints, never when models itself is imported.
READ_SIDE = {
    "_ranges",
    "compliance",
    "export",
    "feeds",
    "integrity",
    "pages",
    "stats",
    "templates",
}
DEFERRED = {"models": READ_SIDE}


def _first_party_imports(path: pathlib.Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def _import_time_imports(path: pathlib.Path) -> set[str]:
    """First-party imports run when the module is imported: not those inside
    functions or ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_lower_layers(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    at_import = _import_time_imports(path)
    assert at_import <= ALLOWED[module], at_import - ALLOWED[module]

    allowed = ALLOWED[module] | DEFERRED.get(module, set())
    imported = _first_party_imports(path)
    assert imported <= allowed, imported - allowed
