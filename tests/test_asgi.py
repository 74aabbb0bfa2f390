"""The plain ASGI middleware, driven with hand-made scopes."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from mongoengine_activity import current_context, log_activity
from mongoengine_activity.integrations.asgi import ActivityContextMiddleware

from .web import CLIENT, GENERATED_ID, TRUSTED, Visit, only_activity, stored

Message = MutableMapping[str, Any]


async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        scope["seen_context"] = current_context()
        return
    Visit(page=scope["path"]).save()
    await asyncio.sleep(0)
    if scope["path"] == "/fail":
        raise RuntimeError("view failed")
    if scope["path"] == "/task":
        await asyncio.create_task(background())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def background() -> None:
    await asyncio.sleep(0)
    log_activity("job_done", entity=("Job", 1))


def scope(path: str = "/", client: str = "127.0.0.1", **headers: str) -> Any:
    return {
        "type": "http",
        "path": path,
        "client": (client, 5000),
        "headers": [
            (name.replace("_", "-").lower().encode(), value.encode("latin-1"))
            for name, value in headers.items()
        ],
    }


def call(middleware: ActivityContextMiddleware, request: Any) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(middleware(request, receive, send))
    return sent


def test_request_values_fill_the_activity() -> None:
    middleware = ActivityContextMiddleware(
        app,
        trusted_proxies=TRUSTED,
        user_getter=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode(),
    )
    call(
        middleware,
        scope(
            client="10.9.9.9",
            x_forwarded_for=f"6.6.6.6, {CLIENT}",
            x_request_id="req-7",
            user_agent="agent\x07/1",
            x_user="bob",
        ),
    )

    activity = only_activity()
    assert activity["userId"] == "bob"
    assert activity["context"] == {
        "requestId": "req-7",
        "ip": CLIENT,
        "userAgent": "agent/1",
    }


@pytest.mark.parametrize(
    "request_id", ["y" * 200, "a;b", "\u00e9"], ids=["oversized", "semicolon", "utf8"]
)
def test_an_unsafe_request_id_is_replaced(request_id: str) -> None:
    call(
        ActivityContextMiddleware(app),
        scope(x_request_id=request_id.encode().decode("latin-1")),
    )

    assert GENERATED_ID.fullmatch(only_activity()["context"]["requestId"])


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    middleware = ActivityContextMiddleware(app, trusted_proxies=TRUSTED)
    call(middleware, scope(client="203.0.113.5", x_forwarded_for="127.0.0.1"))

    assert only_activity()["context"]["ip"] == "203.0.113.5"


def test_tasks_started_by_the_app_inherit_the_request_context() -> None:
    call(ActivityContextMiddleware(app), scope("/task", x_request_id="with-task"))

    assert [(row["type"], row["context"]["requestId"]) for row in stored()] == [
        ("visit_created", "with-task"),
        ("job_done", "with-task"),
    ]


def test_an_exception_in_the_app_keeps_earlier_activities_and_leaves_no_context() -> (
    None
):
    middleware = ActivityContextMiddleware(app)

    async def run() -> dict[str, Any]:
        async def receive() -> Message:
            return {"type": "http.request"}

        async def send(message: Message) -> None:
            return None

        with pytest.raises(RuntimeError, match="view failed"):
            await middleware(scope("/fail", x_request_id="failing"), receive, send)
        return current_context()

    assert asyncio.run(run()) == {}
    assert only_activity()["context"]["requestId"] == "failing"


def test_lifespan_passes_through_without_a_context() -> None:
    lifespan: dict[str, Any] = {"type": "lifespan"}
    call(ActivityContextMiddleware(app), lifespan)

    assert lifespan["seen_context"] == {}


def test_concurrent_requests_keep_their_own_values() -> None:
    middleware = ActivityContextMiddleware(app)

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(
            *(
                middleware(scope(f"/{n}", x_request_id=f"r{n}"), receive, send)
                for n in range(50)
            )
        )

    asyncio.run(main())
    rows = stored()
    assert len(rows) == 50
    for row in rows:
        assert row["context"]["requestId"] == "r" + row["changes"][0]["to"][1:]
