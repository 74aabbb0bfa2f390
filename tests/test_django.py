"""The Django middleware, through Django's own test clients.

Settings are configured here, minimally: no database, no installed apps; the
user comes from a tiny middleware standing in for ``AuthenticationMiddleware``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tests",
        ALLOWED_HOSTS=["testserver"],
        DATABASES={},
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path

from mongoengine_activity import ConfigurationError, current_context
from mongoengine_activity.integrations.django import (
    ActivityContextMiddleware,
    authenticated_user_pk,
)

from .web import CLIENT, GENERATED_ID, Visit, only_activity

OUR_SETTINGS = {
    "ROOT_URLCONF": __name__,
    "MIDDLEWARE": [
        "mongoengine_activity.integrations.django.ActivityContextMiddleware",
        f"{__name__}.FakeAuthenticationMiddleware",
    ],
    "MONGOENGINE_ACTIVITY": {"TRUSTED_PROXIES": ["10.0.0.0/8", "127.0.0.1"]},
}


@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    """This module's settings on top of whatever configured Django first."""
    with override_settings(**OUR_SETTINGS):
        yield


class FakeUser:
    is_authenticated = True

    def __init__(self, pk: object) -> None:
        self.pk = pk


class AnonymousUser:
    is_authenticated = False
    pk = None


class FakeAuthenticationMiddleware:
    """Sets ``request.user`` from an ``X-User`` header, after our middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        name = request.headers.get("X-User")
        request.user = FakeUser(name) if name else AnonymousUser()  # type: ignore[attr-defined]
        return self.get_response(request)


def visit(request: HttpRequest) -> HttpResponse:
    Visit(page=request.path).save()
    return HttpResponse(current_context()["requestId"])


async def async_visit(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    return visit(request)


def fail(request: HttpRequest) -> HttpResponse:
    Visit(page=request.path).save()
    raise RuntimeError("view failed")


urlpatterns = [
    path("visit", visit),
    path("async-visit", async_visit),
    path("fail", fail),
]


def test_request_values_and_user_fill_the_activity() -> None:
    response = Client(REMOTE_ADDR="10.0.0.9").get(
        "/visit",
        headers={
            "X-Request-ID": "dj-1",
            "User-Agent": "DjangoTest/1\x00\n",
            "X-Forwarded-For": f"8.8.8.8, {CLIENT}",
            "X-User": "ann",
        },
    )

    assert response.content == b"dj-1"
    activity = only_activity()
    assert activity["userId"] == "ann"
    assert activity["context"] == {
        "requestId": "dj-1",
        "ip": CLIENT,
        "userAgent": "DjangoTest/1",
    }


def test_an_anonymous_user_is_none() -> None:
    Client().get("/visit")

    assert only_activity()["userId"] is None


def test_async_requests_are_filled_too() -> None:
    async def run() -> Any:
        return await AsyncClient(REMOTE_ADDR="203.0.113.1").get(
            "/async-visit", headers={"X-Request-ID": "dj-async", "X-User": "bob"}
        )

    response = asyncio.run(run())

    assert response.content == b"dj-async"
    activity = only_activity()
    assert activity["userId"] == "bob"
    assert activity["context"] == {"requestId": "dj-async", "ip": "127.0.0.1"}


@pytest.mark.parametrize(
    "request_id", ["q" * 129, "a b", "x\ty"], ids=["oversized", "space", "tab"]
)
def test_an_unsafe_request_id_is_replaced(request_id: str) -> None:
    response = Client().get("/visit", headers={"X-Request-ID": request_id})

    assert GENERATED_ID.fullmatch(response.content.decode())


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    Client(REMOTE_ADDR="203.0.113.5").get(
        "/visit", headers={"X-Forwarded-For": "10.0.0.1"}
    )

    assert only_activity()["context"]["ip"] == "203.0.113.5"


def test_an_exception_in_the_view_keeps_earlier_activities_and_leaves_no_context() -> (
    None
):
    client = Client(raise_request_exception=False)
    response = client.get("/fail", headers={"X-Request-ID": "failing"})

    assert response.status_code == 500
    assert only_activity()["context"]["requestId"] == "failing"
    assert current_context() == {}


def test_a_raised_exception_leaves_no_context() -> None:
    with pytest.raises(RuntimeError, match="view failed"):
        Client().get("/fail", headers={"X-Request-ID": "raised"})

    assert only_activity()["context"]["requestId"] == "raised"
    assert current_context() == {}


def test_user_getter_from_a_dotted_path() -> None:
    config = {"USER_GETTER": f"{__name__}.header_user"}
    with override_settings(MONGOENGINE_ACTIVITY=config):
        Client().get("/visit", headers={"X-Getter": "carl"})

    assert only_activity()["userId"] == "carl"


def header_user(request: HttpRequest) -> object:
    return request.headers.get("X-Getter")


def test_unknown_setting_keys_are_refused() -> None:
    with (
        override_settings(MONGOENGINE_ACTIVITY={"TRUSTED_PROXY": ["10.0.0.0/8"]}),
        pytest.raises(ConfigurationError, match="unknown key 'TRUSTED_PROXY'"),
    ):
        ActivityContextMiddleware(lambda request: HttpResponse())


def test_authenticated_user_pk() -> None:
    request = HttpRequest()
    assert authenticated_user_pk(request) is None
    request.user = AnonymousUser()  # type: ignore[attr-defined]
    assert authenticated_user_pk(request) is None
    request.user = FakeUser(5)  # type: ignore[attr-defined]
    assert authenticated_user_pk(request) == 5


def test_a_streamed_body_is_produced_inside_the_request_context() -> None:
    def stream(request: HttpRequest) -> StreamingHttpResponse:
        def chunks() -> Any:
            Visit(page="streamed").save()
            yield b"x"

        return StreamingHttpResponse(chunks())

    middleware = ActivityContextMiddleware(stream)
    request = HttpRequest()
    request.META = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REQUEST_ID": "s"}
    response = middleware(request)
    assert current_context() == {}
    assert b"".join(response.streaming_content) == b"x"

    assert only_activity()["context"] == {"requestId": "s", "ip": "127.0.0.1"}
    assert current_context() == {}
