"""The SSE and WebSocket endpoints for Starlette/FastAPI, Flask and Django."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from mongoengine_activity import Activity, activity_context, configure, log_activity

pytest.importorskip("starlette")
pytest.importorskip("flask")
pytest.importorskip("django")

import django
import flask
from django.conf import settings
from starlette.applications import Starlette

from mongoengine_activity.realtime import django as django_sse
from mongoengine_activity.realtime import flask as flask_sse
from mongoengine_activity.realtime.starlette import activity_routes
from mongoengine_activity.realtime.stream import _hub


@pytest.fixture(autouse=True)
def streams_are_closed() -> Iterator[None]:
    """Every endpoint closes its stream when its client goes away."""
    yield
    assert not _hub._streams


def log(number: int, user_id: str = "u-1") -> Activity:
    activity = log_activity(
        "order_shipped", entity=("Order", number), user_id=user_id, data={"n": number}
    )
    assert activity is not None
    return activity


def sse_events(text: str) -> list[dict[str, Any]]:
    """Parse SSE text into events: ``{"id": ..., "data": {...}}``."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line
        )
        if "data" in fields:
            events.append({"id": fields["id"], "data": json.loads(fields["data"])})
    return events


def by_user(request: Any) -> dict[str, Any]:
    return {"user_id": request.headers.get("X-User")}


# --- Starlette / FastAPI


def starlette_app(**options: Any) -> Starlette:
    return Starlette(routes=activity_routes(filters=by_user, **options))


async def _read_sse(
    app: Starlette, headers: dict[str, str], wanted: int, write: Any
) -> str:
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    disconnected = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await sent.put(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/activities/stream",
        "raw_path": b"/activities/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    start = await asyncio.wait_for(sent.get(), 5)
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    write()
    body = ""
    while body.count("event: activity") < wanted:
        message = await asyncio.wait_for(sent.get(), 5)
        body += message.get("body", b"").decode()
    disconnected.set()
    await asyncio.wait_for(task, 5)
    return body


def test_starlette_sse_streams_live_activities_of_the_tenant_its_filters_name() -> None:
    configure(multi_tenant=True, tenant_field="orgId", tenant_isolation="strict")
    app = Starlette(
        routes=activity_routes(
            filters=lambda request: {"tenant": request.headers["X-Org"]},
            heartbeat=60,
        )
    )

    def write() -> None:
        for number, tenant in enumerate(["globex", "acme", "globex", "acme"]):
            with activity_context(tenant=tenant):
                log(number)

    body = asyncio.run(_read_sse(app, {"X-Org": "acme"}, 2, write))

    events = sse_events(body)
    assert [event["data"]["meta"]["n"] for event in events] == [1, 3]
    assert {event["data"]["orgId"] for event in events} == {"acme"}


def test_starlette_sse_streams_the_users_activities() -> None:
    app = starlette_app(heartbeat=60)

    def write() -> None:
        log(0)
        log(1, user_id="u-2")
        log(2)

    body = asyncio.run(_read_sse(app, {"X-User": "u-1"}, 2, write))

    assert body.startswith("retry: 3000\n\n")
    assert [event["data"]["meta"]["n"] for event in sse_events(body)] == [0, 2]


def test_starlette_sse_resumes_from_last_event_id() -> None:
    seen = log(0)
    log(1)
    log(2)

    body = asyncio.run(
        _read_sse(
            starlette_app(heartbeat=60),
            {"X-User": "u-1", "Last-Event-ID": str(seen.id)},
            3,
            lambda: log(3),
        )
    )

    events = sse_events(body)
    assert [event["data"]["meta"]["n"] for event in events] == [1, 2, 3]
    assert [event["id"] for event in events] == [
        event["data"]["id"] for event in events
    ]


def test_starlette_sse_sends_heartbeats() -> None:
    async def main() -> str:
        sent: list[dict[str, Any]] = []
        disconnected = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if b": keep-alive" in message.get("body", b""):
                disconnected.set()

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/activities/stream",
            "query_string": b"",
            "headers": [],
        }
        await asyncio.wait_for(starlette_app(heartbeat=0.01)(scope, receive, send), 5)
        return "".join(m.get("body", b"").decode() for m in sent)

    assert ": keep-alive\n\n" in asyncio.run(main())


async def _websocket(
    app: Starlette, query: str, headers: dict[str, str], wanted: int, write: Any
) -> list[dict[str, Any]]:
    """Connect to the WebSocket endpoint, ``write()``, read ``wanted`` messages."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await incoming.put({"type": "websocket.connect"})
    scope = {
        "type": "websocket",
        "path": "/activities/ws",
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    task = asyncio.create_task(app(scope, incoming.get, outgoing.put))
    accepted = await asyncio.wait_for(outgoing.get(), 5)
    assert accepted["type"] == "websocket.accept"
    write()
    messages = [
        json.loads((await asyncio.wait_for(outgoing.get(), 5))["text"])
        for _ in range(wanted)
    ]
    await incoming.put({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(task, 5)
    return messages


def test_starlette_websocket_sends_activities_and_resumes() -> None:
    first = log(0)

    def write() -> None:
        log(1)
        log(2, user_id="u-2")
        log(3)

    messages = asyncio.run(
        _websocket(
            starlette_app(heartbeat=60),
            f"last_event_id={first.id}",
            {"X-User": "u-1"},
            2,
            write,
        )
    )

    assert [m["type"] for m in messages] == ["activity", "activity"]
    assert [m["activity"]["meta"]["n"] for m in messages] == [1, 3]
    assert messages[0]["id"] == messages[0]["activity"]["id"]
    assert messages[0]["activity"]["message"] == "u-1 order_shipped Order 1"


def test_starlette_websocket_sends_heartbeats() -> None:
    messages = asyncio.run(
        _websocket(starlette_app(heartbeat=0.01), "", {}, 1, lambda: None)
    )

    assert messages == [{"type": "heartbeat"}]


def test_starlette_websocket_closes_a_too_slow_client_with_its_resume_id() -> None:
    async def main() -> list[dict[str, Any]]:
        incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []
        gate = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "websocket.accept":
                for n in range(5):
                    log(n)
                gate.set()

        await incoming.put({"type": "websocket.connect"})
        app = starlette_app(heartbeat=60, max_queue=2, overflow="disconnect")
        scope = {
            "type": "websocket",
            "path": "/activities/ws",
            "query_string": b"",
            "headers": [],
        }
        await asyncio.wait_for(app(scope, incoming.get, send), 5)
        return sent

    sent = asyncio.run(main())

    assert sent[-1] == {"type": "websocket.close", "code": 1013, "reason": ""}
    assert json.loads(sent[-2]["text"]) == {
        "type": "overflow",
        "last_event_id": "0" * 24,
    }


# --- Flask


def test_flask_sse_view_streams_and_resumes() -> None:
    app = flask.Flask(__name__)
    app.add_url_rule(
        "/stream", view_func=flask_sse.sse_view(filters=by_user, heartbeat=60)
    )
    seen = log(0)
    log(1, user_id="u-2")
    log(2)

    response = app.test_client().get(
        "/stream", headers={"X-User": "u-1", "Last-Event-ID": str(seen.id)}
    )
    chunks = iter(response.response)
    first = [next(chunks), next(chunks)]
    log(3)
    live = next(chunks)
    response.close()

    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    text = b"".join([*first, live]).decode()
    assert [e["data"]["meta"]["n"] for e in sse_events(text)] == [2, 3]


# --- Django


def _django() -> None:
    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], DEFAULT_CHARSET="utf-8", USE_TZ=True
        )
        django.setup()


def test_django_sse_view_streams_and_resumes() -> None:
    _django()
    from django.test import RequestFactory

    view = django_sse.sse_view(filters=by_user, heartbeat=60)
    seen = log(0)
    log(1)

    response = view(
        RequestFactory().get(
            "/stream", HTTP_X_USER="u-1", HTTP_LAST_EVENT_ID=str(seen.id)
        )
    )
    chunks = iter(response.streaming_content)
    retry, replayed = next(chunks), next(chunks)
    log(2)
    live = next(chunks)
    response.close()

    assert response["Content-Type"] == "text/event-stream"
    assert retry == b"retry: 3000\n\n"
    assert [e["data"]["meta"]["n"] for e in sse_events((replayed + live).decode())] == [
        1,
        2,
    ]


def test_django_sse_view_streams_asynchronously_under_asgi() -> None:
    _django()
    from django.test import AsyncRequestFactory

    view = django_sse.sse_view(heartbeat=60)

    async def main() -> list[bytes]:
        response = view(AsyncRequestFactory().get("/stream"))
        assert response.is_async
        chunks = response.streaming_content.__aiter__()
        retry = await chunks.__anext__()
        log(0)
        event = await asyncio.wait_for(chunks.__anext__(), 5)
        response.close()
        return [retry, event]

    retry, event = asyncio.run(main())

    assert retry == b"retry: 3000\n\n"
    assert [e["data"]["meta"]["n"] for e in sse_events(event.decode())] == [0]


def test_fastapi_serves_the_same_routes() -> None:
    fastapi = pytest.importorskip("fastapi")
    app = fastapi.FastAPI()
    app.router.routes.extend(activity_routes(filters=by_user, heartbeat=60))

    body = asyncio.run(_read_sse(app, {"X-User": "u-1"}, 1, lambda: log(0)))

    assert [event["data"]["meta"]["n"] for event in sse_events(body)] == [0]
