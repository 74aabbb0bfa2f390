"""The Starlette/FastAPI middleware, through Starlette's own TestClient."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

with warnings.catch_warnings():
    # Newer Starlette asks for the httpx2 fork for its TestClient and warns on
    # httpx; either works for these tests.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mongoengine_activity import current_context, log_activity
from mongoengine_activity.integrations.starlette import ActivityContextMiddleware

from .web import CLIENT, GENERATED_ID, TRUSTED, Visit, only_activity, stored


def state_user(connection: HTTPConnection) -> Any:
    return getattr(connection.state, "user", None)


def authenticate(request: Request) -> str | None:
    user = request.headers.get("X-User")
    request.state.user = user
    return user


def make_api() -> FastAPI:
    api = FastAPI()

    @api.get("/visit")
    async def visit(user: str | None = Depends(authenticate)) -> str:
        Visit(page="/visit").save()
        return str(current_context()["requestId"])

    @api.get("/sync-visit")
    def sync_visit(user: str | None = Depends(authenticate)) -> str:
        # Sync endpoints run in Starlette's thread pool.
        Visit(page="/sync-visit").save()
        return str(current_context()["requestId"])

    @api.get("/background")
    async def background(tasks: BackgroundTasks) -> str:
        tasks.add_task(log_activity, "mail_sent", entity=("Mail", 1))
        return "ok"

    @api.get("/fail")
    async def fail() -> str:
        Visit(page="/fail").save()
        raise RuntimeError("view failed")

    api.add_middleware(
        ActivityContextMiddleware, trusted_proxies=TRUSTED, user_getter=state_user
    )
    return api


@pytest.mark.parametrize("path", ["/visit", "/sync-visit"], ids=["async", "sync"])
def test_request_values_and_user_fill_the_activity(path: str) -> None:
    client = TestClient(make_api(), client=("10.0.0.3", 4000))
    response = client.get(
        path,
        headers={
            "X-Request-ID": "api-1",
            "User-Agent": "FastAPITest/1\u200b\u202e".encode(),
            "X-Forwarded-For": f"9.9.9.9, {CLIENT}",
            "X-User": "dora",
        },
    )

    assert response.json() == "api-1"
    activity = only_activity()
    assert activity["userId"] == "dora"
    assert activity["context"] == {
        "requestId": "api-1",
        "ip": CLIENT,
        "userAgent": "FastAPITest/1",
    }


@pytest.mark.parametrize(
    "request_id", ["w" * 129, "a,b", "new\\nline"], ids=["oversized", "comma", "bs"]
)
def test_an_unsafe_request_id_is_replaced(request_id: str) -> None:
    response = TestClient(make_api()).get(
        "/visit", headers={"X-Request-ID": request_id}
    )

    assert GENERATED_ID.fullmatch(response.json())


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    TestClient(make_api(), client=("203.0.113.5", 4000)).get(
        "/visit", headers={"X-Forwarded-For": "127.0.0.1"}
    )

    assert only_activity()["context"]["ip"] == "203.0.113.5"


def test_a_test_client_without_an_address_records_no_ip() -> None:
    # The default TestClient peer is the name "testclient", not an address.
    TestClient(make_api()).get("/visit")

    assert "ip" not in only_activity()["context"]


def test_background_tasks_run_inside_the_request_context() -> None:
    TestClient(make_api()).get("/background", headers={"X-Request-ID": "bg"})

    activity = only_activity()
    assert activity["type"] == "mail_sent"
    assert activity["context"]["requestId"] == "bg"


def test_an_exception_in_the_view_keeps_earlier_activities_and_leaves_no_context() -> (
    None
):
    client = TestClient(make_api(), raise_server_exceptions=False)
    response = client.get("/fail", headers={"X-Request-ID": "failing"})

    assert response.status_code == 500
    assert only_activity()["context"]["requestId"] == "failing"
    assert current_context() == {}


def test_a_raised_exception_leaves_no_context() -> None:
    with pytest.raises(RuntimeError, match="view failed"):
        TestClient(make_api()).get("/fail", headers={"X-Request-ID": "raised"})

    assert only_activity()["context"]["requestId"] == "raised"
    assert current_context() == {}


def test_plain_starlette_with_a_websocket() -> None:
    async def home(request: Request) -> PlainTextResponse:
        Visit(page="/").save()
        return PlainTextResponse("ok")

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        Visit(page=await websocket.receive_text()).save()
        await websocket.close()

    app = Starlette(routes=[Route("/", home), WebSocketRoute("/ws", socket)])
    app.add_middleware(ActivityContextMiddleware)
    client = TestClient(app, client=("127.0.0.1", 1))
    client.get("/", headers={"X-Request-ID": "http-1"})
    with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as ws:
        ws.send_text("/ws")

    assert [(row["context"]["requestId"], row["userId"]) for row in stored()] == [
        ("http-1", None),
        ("ws-1", None),
    ]
