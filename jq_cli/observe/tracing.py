"""OpenTelemetry, optional (`pip install 'jq-cli[otel]'`): the trace context at submit travels
with the job, and the worker runs the handler in a child span, with spans for claim and finish.

Nothing here imports OpenTelemetry unless the process already did, and nothing is recorded or
stored unless the application set a tracer provider: an application that does not trace pays a
dictionary look-up, and a machine without the extra imports nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

TRACER = "jq_cli"


def _enabled() -> bool:
    # The API is imported by whoever configured tracing; if nobody did, there is nothing to carry.
    # Imported is not enough: redis-py imports it too when it is installed. Tracing is on once
    # the application set a tracer provider (the default is a proxy that records nothing).
    if "opentelemetry.trace" not in sys.modules:
        return False
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def current_context_json() -> str | None:
    """The W3C trace context (traceparent, tracestate) of the caller's span as JSON, or None when
    the process does not trace or no span is active."""
    if not _enabled():
        return None
    from opentelemetry import propagate, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return json.dumps(carrier) if carrier else None


def _field(job: Any, name: str, default: Any = None) -> Any:
    """A column of a job row (a mapping) or of the worker's ClaimedJob (attributes)."""
    if isinstance(job, Mapping):
        return job.get(name, default)
    return getattr(job, name, default)


def job_attributes(job: Any) -> dict[str, Any]:
    return {
        "jq.job.id": _field(job, "id"),
        "jq.job.type": _field(job, "job_type"),
        "jq.job.queue": _field(job, "queue", "default"),
        "jq.job.attempt": _field(job, "attempts", 0),
    }


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """A span of the worker's own (claim, finish), or nothing when the process does not trace."""
    if not _enabled():
        return nullcontext()
    from opentelemetry import trace

    return trace.get_tracer(TRACER).start_as_current_span(name, attributes=dict(attributes or {}))


def handler_span(job: Any) -> AbstractContextManager[Any]:
    """Run a handler in a child of the span the job was submitted under (a root span when it
    carried none), with the job's id, type, queue and attempt as attributes. A handler's failure
    is recorded on the span and raised on. Nothing (not even a generator) when not tracing: it
    wraps every job."""
    if not _enabled():
        return nullcontext()
    return _handler_span(job)


@contextmanager
def _handler_span(job: Any) -> Iterator[None]:
    from opentelemetry import propagate, trace

    carried = _field(job, "trace_context")
    if isinstance(carried, str):
        carried = json.loads(carried)
    parent = propagate.extract(carried) if isinstance(carried, dict) else None
    tracer = trace.get_tracer(TRACER)
    # The span records a failure itself, guarded: OpenTelemetry's own recording calls str() on
    # the exception, and a handler's exception whose __str__ raises would then replace the
    # handler's failure with the tracer's (docs/design.md, Invariant 6).
    with tracer.start_as_current_span(
        f"jq.run {_field(job, 'job_type')}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=job_attributes(job),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as exc:
            _record_failure(span, exc)
            raise


def _record_failure(span: Any, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    try:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    except Exception:  # the exception's text is broken: keep its type only
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
