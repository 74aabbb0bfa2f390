"""Test fixtures: one connection per run (mongomock, or MONGODB_URI), a clean
database and default settings for every test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import mongoengine
import pytest

import mongoengine_activity as ma
from mongoengine_activity import Activity, options, templates

SERVER_URI = os.environ.get("MONGODB_URI")
DB_NAME = f"mongoengine_activity_test_{uuid.uuid4().hex[:8]}"


def _connect() -> None:
    if SERVER_URI:
        mongoengine.connect(db=DB_NAME, host=SERVER_URI, uuidRepresentation="standard")
    else:
        import mongomock

        mongoengine.connect(
            db=DB_NAME,
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
        )


@pytest.fixture(scope="session", autouse=True)
def connection() -> Iterator[None]:
    _connect()
    yield
    mongoengine.get_connection().drop_database(DB_NAME)
    mongoengine.disconnect()


@pytest.fixture(autouse=True)
def clean_database(connection: None) -> Iterator[None]:
    """Empty every collection, reset the settings, the log's indexes and the
    registered templates."""
    ma.configure(reset=True)
    templates._templates.clear()
    yield
    templates._templates.clear()
    database = mongoengine.get_db()
    for name in database.list_collection_names():
        database[name].delete_many({})
    ma.configure(reset=True)
    restore_activity_indexes()


def restore_activity_indexes() -> None:
    """Back to the indexes of a log without multi-tenancy: a multi-tenant test
    swaps the global unique event-id index for a per-tenant one."""
    declared = {spec["name"] for spec in Activity._meta["index_specs"]} | {"_id_"}
    collection = Activity._get_collection()
    for name in set(collection.index_information()) - declared:
        collection.drop_index(name)
    Activity.ensure_indexes()


@pytest.fixture
def on_server() -> bool:
    return SERVER_URI is not None


requires_server = pytest.mark.skipif(
    SERVER_URI is None,
    reason="needs a real MongoDB server: set MONGODB_URI (mongomock lacks this)",
)

__all__ = ["options", "requires_server"]
