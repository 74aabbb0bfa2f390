"""Shared pieces of the web integration tests: a tracked model and readers."""

from __future__ import annotations

import re
from typing import Any

import mongoengine as me

from mongoengine_activity import Activity, TrackedDocument

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
TRUSTED = ["10.0.0.0/8", "127.0.0.1"]
CLIENT = "198.51.100.23"


class Visit(TrackedDocument):
    """Saved by the test apps: each save writes a ``visit_created`` activity."""

    page = me.StringField()


def stored() -> list[dict[str, Any]]:
    """Every stored activity, oldest first, without ``_id``."""
    collection = Activity._get_collection()
    rows = collection.find({}, {"_id": 0}).sort([("createdAt", 1), ("_id", 1)])
    return list(rows)


def only_activity() -> dict[str, Any]:
    [row] = stored()
    return row
