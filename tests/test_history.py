"""Order.history(pk).at(when): rebuilding tracked fields from activities."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import mongoengine as me
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mongoengine_activity import Activity, TrackedDocument, writer
from mongoengine_activity._bson import normalize
from mongoengine_activity.history import apply_changes

T0 = dt.datetime(2026, 1, 1)


class Part(me.EmbeddedDocument):
    name = me.StringField(db_field="n")
    qty = me.IntField()


class Recipe(TrackedDocument):
    title = me.StringField()
    servings = me.IntField(db_field="srv")
    tags = me.ListField(me.StringField())
    parts = me.ListField(me.EmbeddedDocumentField(Part))
    extra = me.DictField()
    hidden = me.StringField()

    meta = {"activity": {"exclude": ["hidden"]}}


@contextmanager
def ticking_clock() -> Iterator[list[dt.datetime]]:
    """Each activity one second after the last, so every save has its moment."""
    moments: list[dt.datetime] = []

    def tick() -> dt.datetime:
        moments.append(T0 + dt.timedelta(seconds=len(moments)))
        return moments[-1]

    with mock.patch.object(writer, "now_ms", tick):
        yield moments


def tracked_state(recipe: Recipe) -> dict[str, Any]:
    """The stored document (MongoEngine unsets an emptied list), less excluded."""
    son = normalize(Recipe._get_collection().find_one({"_id": recipe.pk}))
    son.pop("hidden", None)
    return _without_none(son)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def test_at_before_creation_is_none() -> None:
    with ticking_clock() as moments:
        recipe = Recipe(title="soup").save()

    history = Recipe.history(recipe.pk)
    assert history.at(moments[0] - dt.timedelta(milliseconds=1)) is None
    assert history.at(moments[0]) == {
        "_id": recipe.pk,
        "title": "soup",
        "tags": [],
        "parts": [],
        "extra": {},
    }


def test_at_follows_updates_and_deletes() -> None:
    with ticking_clock() as moments:
        recipe = Recipe(
            title="soup", servings=2, parts=[Part(name="leek", qty=1)]
        ).save()
        recipe.servings = 4
        recipe.parts[0].qty = 3
        recipe.save()
        recipe.delete()

    history = Recipe.history(recipe.pk)
    assert history.at(moments[1]) == {
        "_id": recipe.pk,
        "title": "soup",
        "srv": 4,
        "tags": [],
        "parts": [{"n": "leek", "qty": 3}],
        "extra": {},
    }
    assert history.at(moments[2]) is None
    rebuilt = history.document_at(moments[0])
    assert isinstance(rebuilt, Recipe)
    assert (rebuilt.servings, rebuilt.parts[0].name) == (2, "leek")
    assert [a.type for a in history.activities()] == [
        "recipe_created",
        "recipe_updated",
        "recipe_deleted",
    ]


def test_queryset_updates_are_replayed() -> None:
    with ticking_clock() as moments:
        recipe = Recipe(title="soup", tags=["a", "b"]).save()
        Recipe.objects(pk=recipe.pk).update(pull__tags="a", set__servings=3)

    assert Recipe.history(recipe.pk).at(moments[-1]) == {
        "_id": recipe.pk,
        "title": "soup",
        "tags": ["b"],
        "parts": [],
        "extra": {},
        "srv": 3,
    }


def test_apply_changes_follows_the_diff_rules() -> None:
    state: dict[str, Any] = {"a": {"b": 1, "c": 2}, "l": [1, 2], "s": [1, 2, 3]}
    apply_changes(
        state,
        [
            {"path": "a.b", "from": 1, "to": 5},
            {"path": "a.c", "from": 2, "to": None},
            {"path": "l.2", "from": None, "to": 3},
            {"path": "s", "from": [1, 2, 3], "to": [1]},
            {"path": "n.0.x", "from": None, "to": 1},
        ],
    )

    assert state == {"a": {"b": 5}, "l": [1, 2, 3], "s": [1], "n": [{"x": 1}]}


# --- property: replaying random edits reproduces every step

words = st.text(alphabet="abcxyz", min_size=0, max_size=3)
parts = st.lists(
    st.builds(Part, name=st.one_of(st.none(), words), qty=st.integers(-3, 3)),
    max_size=3,
)
edits = st.one_of(
    st.tuples(st.just("title"), st.one_of(st.none(), words)),
    st.tuples(st.just("servings"), st.one_of(st.none(), st.integers(-5, 5))),
    st.tuples(st.just("tags"), st.lists(words, max_size=4)),
    st.tuples(st.just("append_tag"), words),
    st.tuples(st.just("pop_tag"), st.none()),
    st.tuples(st.just("parts"), parts),
    st.tuples(st.just("part_qty"), st.integers(-3, 3)),
    st.tuples(st.just("extra"), st.dictionaries(words, words, max_size=3)),
    st.tuples(st.just("extra_key"), st.tuples(words, st.one_of(st.none(), words))),
    st.tuples(st.just("hidden"), words),
)


def apply_edit(recipe: Recipe, edit: tuple[str, Any]) -> None:
    name, value = edit
    if name == "append_tag":
        recipe.tags.append(value)
    elif name == "pop_tag":
        if recipe.tags:
            recipe.tags.pop()
    elif name == "part_qty":
        if recipe.parts:
            recipe.parts[0].qty = value
    elif name == "extra_key":
        key, item = value
        if item is None:
            recipe.extra.pop(key, None)
        else:
            recipe.extra[key] = item
    else:
        setattr(recipe, name, value)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(first=st.lists(edits, max_size=4), steps=st.lists(edits, min_size=1, max_size=8))
def test_replay_reproduces_each_step(
    first: list[tuple[str, Any]], steps: list[tuple[str, Any]]
) -> None:
    Activity.objects.delete()
    expected: list[tuple[int, dict[str, Any]]] = []
    with ticking_clock() as moments:
        recipe = Recipe(title="start")
        for edit in first:
            apply_edit(recipe, edit)
        recipe.save()
        expected.append((len(moments), tracked_state(recipe)))
        for edit in steps:
            apply_edit(recipe, edit)
            recipe.save()
            recipe = Recipe.objects.get(pk=recipe.pk) if len(moments) % 3 else recipe
            expected.append((len(moments), tracked_state(recipe)))

    history = Recipe.history(recipe.pk)
    for count, state in expected:
        at = T0 + dt.timedelta(seconds=count - 1) if count else T0
        assert history.at(at) == state
    Recipe.objects.delete()


def test_at_reads_only_the_tenant_in_the_context() -> None:
    from mongoengine_activity import activity_context, configure

    configure(multi_tenant=True, tenant_field="tenantId")
    with ticking_clock() as moments:
        with activity_context(tenant="t1"):
            recipe = Recipe(title="one").save()
        with activity_context(tenant="t2"):
            writer.log_activity(
                "recipe_updated",
                entity=("Recipe", recipe.pk),
                changes=[{"path": "title", "from": "one", "to": "forged"}],
            )

    with activity_context(tenant="t1"):
        state = Recipe.history(recipe.pk).at(moments[-1])
    assert state is not None
    assert state["title"] == "one"
