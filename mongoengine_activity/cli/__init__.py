"""The ``mongoengine-activity`` command line (needs the ``cli`` extra)."""

from __future__ import annotations

import sys

try:
    import click
except ImportError:  # pragma: no cover - depends on the installed extras
    sys.exit(
        "mongoengine-activity: the command line needs click; "
        "install it with: pip install 'mongoengine-activity[cli]'"
    )

from . import (  # noqa: F401  - each module registers its command
    _compliance,
    _demo,
    _feed,
    _lifecycle,
    _stats,
    _tail,
)
from ._common import connect_option, main

__all__ = ["click", "connect_option", "main"]
