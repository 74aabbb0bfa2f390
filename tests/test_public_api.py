"""The public API is what __all__ says, sorted and complete."""

from __future__ import annotations

import mongoengine_activity as ma


def test_all_is_sorted_and_importable() -> None:
    assert list(ma.__all__) == sorted(ma.__all__)
    for name in ma.__all__:
        assert getattr(ma, name) is not None


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(ma).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("mongoengine_activity")
    }
    assert public <= set(ma.__all__)


def test_import_needs_only_the_runtime_dependencies() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mongoengine_activity;"
        "bad = [m for m in ('click', 'flask', 'django', 'starlette', 'fastapi',"
        " 'mongomock', 'reportlab', 'fpdf', 'opentelemetry') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
