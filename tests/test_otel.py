"""OpenTelemetry trace ids recorded from the active span."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from mongoengine_activity import activity_context, log_activity
from mongoengine_activity.context import deferred
from mongoengine_activity.integrations import otel
from mongoengine_activity.integrations.wsgi import ActivityContextMiddleware

from .web import Visit, only_activity, stored


@pytest.fixture(scope="module")
def tracer() -> Iterator[trace.Tracer]:
    # A private provider: the global one can be set only once per process.
    yield TracerProvider().get_tracer("mongoengine-activity-tests")


def test_no_trace_id_without_an_active_span() -> None:
    assert otel.available() is True
    assert otel.current_trace_id() is None


def test_trace_id_of_the_active_span(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("work") as span:
        expected = format(span.get_span_context().trace_id, "032x")
        assert otel.current_trace_id() == expected


def test_middleware_records_the_trace_id_of_the_span_active_at_write_time(
    tracer: trace.Tracer,
) -> None:
    def app(environ: object, start_response: object) -> list[bytes]:
        Visit(page="/untraced").save()
        with tracer.start_as_current_span("handler") as span:
            Visit(page="/traced").save()
            environ["trace"] = format(span.get_span_context().trace_id, "032x")  # type: ignore[index]
        return [b""]

    environ: dict[str, object] = {"REMOTE_ADDR": "127.0.0.1"}
    list(ActivityContextMiddleware(app)(environ, lambda *args: None))  # type: ignore[arg-type]

    untraced, traced = stored()
    assert "traceId" not in untraced["context"]
    assert traced["context"]["traceId"] == environ["trace"]


def test_middleware_records_no_trace_id_when_turned_off(
    tracer: trace.Tracer,
) -> None:
    def app(environ: object, start_response: object) -> list[bytes]:
        with tracer.start_as_current_span("handler"):
            Visit(page="/").save()
        return [b""]

    middleware = ActivityContextMiddleware(app, trace_ids=False)  # type: ignore[arg-type]
    list(middleware({"REMOTE_ADDR": "127.0.0.1"}, lambda *args: None))

    assert "traceId" not in only_activity()["context"]


def test_trace_ids_outside_requests(tracer: trace.Tracer) -> None:
    with (
        activity_context(trace_id=deferred(otel.current_trace_id)),
        tracer.start_as_current_span("job") as span,
    ):
        log_activity("job_ran", entity=("Job", 1))

    assert only_activity()["context"]["traceId"] == format(
        span.get_span_context().trace_id, "032x"
    )
