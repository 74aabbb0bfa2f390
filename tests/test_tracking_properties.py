"""Property tests: whatever in-place edits a loaded document gets, replaying the
logged changes onto the stored document before the save gives the stored
document after it."""

from __future__ import annotations

from typing import Any

import mongoengine as me
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongoengine_activity import Activity, TrackedDocument
from mongoengine_activity._bson import normalize


class Nested(TrackedDocument):
    data = me.DictField()
    rows = me.ListField(me.DictField())
    loose = me.DynamicField()


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text("ab", max_size=2)
)
keys = st.sampled_from(["a", "b", "c"])
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
    ),
    max_leaves=8,
)


def _containers(value: Any, found: list[Any]) -> list[Any]:
    if isinstance(value, dict | list):
        found.append(value)
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            _containers(child, found)
    return found


def _mutate(data: st.DataObject, document: Nested) -> None:
    targets = (
        _containers(document.data, [])
        + _containers(document.rows, [])
        + _containers(document.loose, [])
    )
    target = data.draw(st.sampled_from(targets))
    if isinstance(target, dict):
        action = data.draw(st.sampled_from(["set", "delete"]))
        key = data.draw(keys)
        if action == "set":
            target[key] = data.draw(values)
        else:
            target.pop(key, None)
        return

    action = data.draw(st.sampled_from(["append", "pop", "set"]))
    if action == "append" or not target:
        target.append(data.draw(values) if target is not document.rows else {})
    elif action == "pop":
        target.pop(data.draw(st.integers(0, len(target) - 1)))
    else:
        index = data.draw(st.integers(0, len(target) - 1))
        target[index] = data.draw(values) if target is not document.rows else {"a": 1}


def _set_path(document: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    holder: Any = document
    for part in parts[:-1]:
        holder = (
            holder[int(part)]
            if isinstance(holder, list)
            else holder.setdefault(part, {})
        )
    last = parts[-1]
    if isinstance(holder, list):
        index = int(last)
        if index == len(holder):
            holder.append(value)
        else:
            holder[index] = value
    elif value is None:
        holder.pop(last, None)
    else:
        holder[last] = value


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nones(v) for v in value]
    return value


def _stored(document_id: Any) -> dict[str, Any]:
    raw = Nested._get_collection().find_one({"_id": document_id})
    return {key: raw[key] for key in ("data", "rows", "loose") if key in raw}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), start=st.dictionaries(keys, values, max_size=3))
def test_replayed_changes_reproduce_every_save(
    data: st.DataObject, start: dict[str, Any]
) -> None:
    Nested._get_collection().delete_many({})
    Activity._get_collection().delete_many({})
    created = Nested(data=start, rows=[{"a": 1}], loose={"a": [1, {"b": []}]}).save()
    document = Nested.objects.get(id=created.pk)

    for _ in range(data.draw(st.integers(1, 4))):
        before = _stored(created.pk)
        activities_before = Activity.objects.count()
        for _ in range(data.draw(st.integers(1, 3))):
            _mutate(data, document)
        document.save()
        after = _stored(created.pk)

        new = list(Activity.objects.order_by("created_at", "id")[activities_before:])
        if _without_nones(before) == _without_nones(after):
            assert new == []
            continue
        [activity] = new
        replayed = normalize(before)
        for change in activity.changes:
            _set_path(replayed, change["path"], normalize(change["to"]))
        assert _without_nones(replayed) == _without_nones(normalize(after))
