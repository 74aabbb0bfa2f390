"""The plain WSGI middleware, driven with hand-made environs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from mongoengine_activity import current_context, log_activity
from mongoengine_activity.integrations.wsgi import ActivityContextMiddleware

from .web import CLIENT, GENERATED_ID, TRUSTED, Visit, only_activity, stored

StartResponse = Callable[..., Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    Visit(page=path).save()
    if path == "/fail":
        raise RuntimeError("view failed")
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/stream":
        return stream()
    return [b"ok"]


def stream() -> Iterator[bytes]:
    yield b"first"
    log_activity("chunk_sent", entity=("Stream", 1))
    yield b"second"


def call(
    middleware: ActivityContextMiddleware, path: str = "/", **environ: str
) -> bytes:
    env: dict[str, Any] = {"PATH_INFO": path, **environ}
    setup_testing_defaults(env)
    statuses: list[str] = []
    body = middleware(env, lambda status, headers: statuses.append(status))
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


def test_request_values_fill_the_activity() -> None:
    middleware = ActivityContextMiddleware(
        app,
        trusted_proxies=TRUSTED,
        user_getter=lambda environ: environ.get("HTTP_X_USER"),
    )
    call(
        middleware,
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR=f"1.1.1.1, {CLIENT}",
        HTTP_X_REQUEST_ID="req-42",
        HTTP_USER_AGENT="Mozilla/5.0\r\nInjected: yes",
        HTTP_X_USER="ann",
    )

    activity = only_activity()
    assert activity["userId"] == "ann"
    assert activity["context"] == {
        "requestId": "req-42",
        "ip": CLIENT,
        "userAgent": "Mozilla/5.0Injected: yes",
    }
    assert current_context() == {}


@pytest.mark.parametrize(
    "request_id",
    ["x" * 129, "bad id", "id\x00", "<b>"],
    ids=["oversized", "space", "nul", "markup"],
)
def test_an_unsafe_request_id_is_replaced(request_id: str) -> None:
    call(ActivityContextMiddleware(app), HTTP_X_REQUEST_ID=request_id)

    assert GENERATED_ID.fullmatch(only_activity()["context"]["requestId"])


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    middleware = ActivityContextMiddleware(app, trusted_proxies=TRUSTED)
    call(middleware, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="10.0.0.1")

    assert only_activity()["context"]["ip"] == "203.0.113.5"


def test_each_request_gets_its_own_generated_id() -> None:
    middleware = ActivityContextMiddleware(app)
    call(middleware)
    call(middleware)

    first, second = (row["context"]["requestId"] for row in stored())
    assert GENERATED_ID.fullmatch(first)
    assert GENERATED_ID.fullmatch(second)
    assert first != second


def test_a_streamed_body_is_produced_inside_the_request_context() -> None:
    middleware = ActivityContextMiddleware(app)
    body = call(middleware, "/stream", HTTP_X_REQUEST_ID="streamed")

    assert body == b"firstsecond"
    assert [(row["type"], row["context"]["requestId"]) for row in stored()] == [
        ("visit_created", "streamed"),
        ("chunk_sent", "streamed"),
    ]
    assert current_context() == {}


def test_an_exception_in_the_app_keeps_earlier_activities_and_leaves_no_context() -> (
    None
):
    middleware = ActivityContextMiddleware(app)
    with pytest.raises(RuntimeError, match="view failed"):
        call(middleware, "/fail", HTTP_X_REQUEST_ID="failing")

    assert only_activity()["context"]["requestId"] == "failing"
    assert current_context() == {}


def test_a_failing_user_getter_never_breaks_the_request() -> None:
    def broken(environ: object) -> object:
        raise KeyError("no session")

    call(ActivityContextMiddleware(app, user_getter=broken), HTTP_X_REQUEST_ID="r")

    activity = only_activity()
    assert activity["userId"] is None
    assert activity["context"]["requestId"] == "r"
