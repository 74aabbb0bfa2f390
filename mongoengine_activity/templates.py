"""Message templates: turning an activity into a line a person can read.

``register_template("order_shipped", message="Order {{orderId}} shipped via
{{carrier}}", icon="shipping", color="#00c853")`` registers a template for one
verb; ``render(activity)`` (or ``activity.render()``) fills it.

Placeholders name a path: ``{{entity.type}}``, ``{{entity.id}}``,
``{{user_id}}``, ``{{team_id}}``, ``{{type}}``, ``{{created_at}}``, and
anything else is a dotted path into ``data`` (``{{address.city}}``,
``{{items.0.sku}}``; ``{{data.type}}`` reaches a data key that shadows a field).
``{{path|text}}`` renders ``text`` when the value is missing. Rendering is one
pass of a regular expression: a value is inserted as text and never scanned
again, so a value containing ``{{x}}`` stays literal; nothing is evaluated or
looked up as an attribute, and a path with a segment starting with ``_``
renders nothing. Only values stored with the activity are used, so rendering
works the same after the user or the document is deleted or forgotten.

This is the read side: ``Activity.register_template`` and
``Activity.render`` import this module when called.
"""

from __future__ import annotations

import datetime as dt
import html as html_escaping
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson.decimal128 import Decimal128

from ._bson import restore
from .errors import ConfigurationError

__all__ = [
    "Rendered",
    "Template",
    "register_template",
    "registered_template",
    "render",
    "unregister_template",
]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}|]*?)\s*(?:\|([^{}]*))?\}\}")
_MISSING = object()
_PRIVATE = object()


@dataclass(frozen=True)
class Template:
    """A registered message, with an optional icon name and colour."""

    message: str
    icon: str | None = None
    color: str | None = None


@dataclass(frozen=True)
class Rendered:
    """An activity as a person reads it."""

    message: str
    icon: str | None = None
    color: str | None = None

    def __str__(self) -> str:
        return self.message


_templates: dict[str, Template] = {}
_lock = threading.Lock()


def register_template(
    type: str, *, message: str, icon: str | None = None, color: str | None = None
) -> Template:
    """Register (or replace) the template of the verb ``type``."""
    if not isinstance(type, str) or not type:
        raise ConfigurationError(
            f"register_template(): type must be a non-empty string, not {type!r}"
        )
    if not isinstance(message, str):
        raise ConfigurationError(
            f"register_template({type!r}): message must be a string, not {message!r}"
        )
    for name, value in (("icon", icon), ("color", color)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"register_template({type!r}): {name} must be a string or None, "
                f"not {value!r}"
            )

    template = Template(message=message, icon=icon, color=color)
    with _lock:
        _templates[type] = template
    return template


def unregister_template(type: str) -> None:
    """Forget the template of ``type``; unknown types are ignored."""
    with _lock:
        _templates.pop(type, None)


def registered_template(type: str) -> Template | None:
    """The template registered for ``type``, if any."""
    return _templates.get(type)


def _fields(activity: Any) -> dict[str, Any]:
    """The values a template may use, from an ``Activity`` or a stored dict."""
    if isinstance(activity, Mapping):
        entity = activity.get("entity") or {}
        stored: dict[str, Any] = restore(
            {
                "type": activity.get("type"),
                "entity": {"type": entity.get("type"), "id": entity.get("id")},
                "user_id": activity.get("userId"),
                "team_id": activity.get("teamId"),
                "created_at": activity.get("createdAt"),
                "data": activity.get("meta") or {},
                "changes": activity.get("changes") or [],
            }
        )
        return stored

    entity = activity.entity
    return {
        "type": activity.type,
        "entity": {
            "type": entity.type if entity is not None else None,
            "id": entity.id if entity is not None else None,
        },
        "user_id": activity.user_id,
        "team_id": activity.team_id,
        "created_at": activity.created_at,
        "data": activity.data or {},
        "changes": activity.changes or [],
    }


def _step(value: Any, segment: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(segment, _MISSING)
    if isinstance(value, list) and segment.isdigit():
        index = int(segment)
        return value[index] if index < len(value) else _MISSING

    return _MISSING


def _lookup(fields: dict[str, Any], path: str) -> Any:
    segments = path.split(".")
    if any(segment.startswith("_") for segment in segments):
        return _PRIVATE
    if not all(segments):
        return _MISSING

    head = segments[0]
    if head in ("type", "user_id", "team_id", "created_at") and len(segments) == 1:
        return fields[head]
    if head == "entity" and len(segments) == 2 and segments[1] in ("type", "id"):
        return fields["entity"][segments[1]]

    value: Any = fields["data"]
    if head == "data" and len(segments) > 1:
        segments = segments[1:]
    for segment in segments:
        value = _step(value, segment)
        if value is _MISSING:
            break

    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {_text(item)}" for key, item in value.items())

    return str(value)


def _default_message(fields: dict[str, Any]) -> str:
    verb = fields["type"] or "activity"
    paths = [
        str(change.get("path"))
        for change in fields["changes"]
        if isinstance(change, Mapping) and change.get("path")
    ]
    return f"{verb}: {', '.join(paths)}" if paths else str(verb)


def render(activity: Any, *, html: bool = False) -> Rendered:
    """Fill the template of the activity's verb, or describe it plainly
    (``"order_updated: status, items.2.qty"``) when it has none.

    ``activity`` is an ``Activity`` or a stored activity dict (as returned by
    ``as_dicts()``). ``html=True`` escapes the inserted values (the template's
    own text is the application's and is kept as written).
    """
    fields = _fields(activity)
    escape = html_escaping.escape if html else str
    template = _templates.get(fields["type"] or "")
    if template is None:
        return Rendered(message=escape(_default_message(fields)))

    def fill(match: re.Match[str]) -> str:
        value = _lookup(fields, match.group(1))
        if value is _PRIVATE:
            return ""
        if value is _MISSING or value is None or value == "":
            return escape(match.group(2) or "")

        return escape(_text(value))

    return Rendered(
        message=_PLACEHOLDER.sub(fill, template.message),
        icon=template.icon,
        color=template.color,
    )
