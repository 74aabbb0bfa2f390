"""The Flask extension, through Flask's own test client."""

from __future__ import annotations

from collections.abc import Iterator

import flask
import pytest

from mongoengine_activity import current_context, log_activity
from mongoengine_activity.integrations.flask import ActivityContext

from .web import CLIENT, GENERATED_ID, TRUSTED, Visit, only_activity, stored


def make_app(**options: object) -> flask.Flask:
    app = flask.Flask("shop")
    app.secret_key = "tests"

    @app.post("/login/<name>")
    def login(name: str) -> str:
        flask.session["user"] = name
        return "ok"

    @app.get("/visit")
    def visit() -> str:
        Visit(page="/visit").save()
        return current_context()["requestId"]

    @app.get("/login-then-save")
    def login_then_save() -> str:
        Visit(page="anonymous").save()
        flask.g.user = "late"
        Visit(page="known").save()
        return "ok"

    @app.get("/fail")
    def fail() -> str:
        Visit(page="/fail").save()
        raise RuntimeError("view failed")

    @app.get("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[str]:
            yield "a"
            log_activity("chunk_sent", entity=("Stream", 1))
            yield "b"

        return flask.Response(chunks())

    ActivityContext(app, trusted_proxies=TRUSTED, **options)  # type: ignore[arg-type]
    return app


def session_user(request: flask.Request) -> object:
    return flask.g.get("user") or flask.session.get("user")


def test_request_values_and_session_user_fill_the_activity() -> None:
    client = make_app(user_getter=session_user).test_client()
    client.post("/login/ann")
    response = client.get(
        "/visit",
        headers={
            "X-Request-ID": "flask-1",
            "User-Agent": "FlaskTest/1\x1b[31m",
            "X-Forwarded-For": f"1.2.3.4, {CLIENT}",
        },
        environ_base={"REMOTE_ADDR": "10.0.0.7"},
    )

    assert response.text == "flask-1"
    activity = only_activity()
    assert activity["userId"] == "ann"
    assert activity["context"] == {
        "requestId": "flask-1",
        "ip": CLIENT,
        "userAgent": "FlaskTest/1[31m",
    }


def test_the_user_is_asked_when_each_activity_is_written() -> None:
    make_app(user_getter=session_user).test_client().get("/login-then-save")

    assert [row["userId"] for row in stored()] == [None, "late"]


def test_without_a_user_getter_there_is_no_user() -> None:
    client = make_app().test_client()
    client.post("/login/ann")
    client.get("/visit")

    assert only_activity()["userId"] is None


@pytest.mark.parametrize(
    "request_id", ["z" * 300, "two words", "semi;colon"], ids=str.__len__
)
def test_an_unsafe_request_id_is_replaced(request_id: str) -> None:
    response = (
        make_app().test_client().get("/visit", headers={"X-Request-ID": request_id})
    )

    assert GENERATED_ID.fullmatch(response.text)
    assert only_activity()["context"]["requestId"] == response.text


def test_a_spoofed_forwarded_for_from_an_untrusted_client_is_ignored() -> None:
    make_app().test_client().get(
        "/visit",
        headers={"X-Forwarded-For": "10.0.0.1"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )

    assert only_activity()["context"]["ip"] == "203.0.113.5"


def test_an_exception_in_the_view_keeps_earlier_activities_and_leaves_no_context() -> (
    None
):
    app = make_app()
    app.testing = False  # an unhandled error becomes a 500, as in production
    response = app.test_client().get("/fail", headers={"X-Request-ID": "failing"})

    assert response.status_code == 500
    assert only_activity()["context"]["requestId"] == "failing"
    assert current_context() == {}


def test_an_exception_propagated_in_testing_mode_leaves_no_context() -> None:
    app = make_app()
    app.testing = True
    with pytest.raises(RuntimeError, match="view failed"):
        app.test_client().get("/fail", headers={"X-Request-ID": "failing"})

    assert only_activity()["context"]["requestId"] == "failing"
    assert current_context() == {}


def test_a_streamed_response_is_produced_inside_the_request_context() -> None:
    response = (
        make_app().test_client().get("/stream", headers={"X-Request-ID": "streamed"})
    )

    assert response.text == "ab"
    assert [row["context"]["requestId"] for row in stored()] == ["streamed"]


def test_init_app_later_and_only_once() -> None:
    app = flask.Flask("late")
    extension = ActivityContext()
    extension.init_app(app)

    assert app.extensions["mongoengine_activity"] is extension
    with pytest.raises(RuntimeError, match="already installed"):
        ActivityContext(app)
