"""The executor: one claimed job in, one storable outcome out, whatever the handler does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math

import pytest
from jq_cli.handlers.registry import (
    Cancelled,
    ForcedCancel,
    JobContext,
    JobTimeout,
    PermanentError,
    Registry,
    Retry,
    Snooze,
)
from jq_cli.model.retry import Backoff
from jq_cli.worker.executor import Executor
from jq_cli.worker.outcomes import SizeCaps
from pydantic import BaseModel

from .worker_standins import claimed_job

CAPS = SizeCaps(max_result_bytes=1000, max_error_bytes=500)


def executor_for(fn, name: str = "t", payload_model=None) -> Executor:
    registry = Registry()
    registry.register(name, fn, payload_model)
    return Executor(registry, Backoff(1.0, 10.0, 0.0), CAPS, "w1")


def run(fn, payload=None, payload_model=None, **job_fields):
    job = claimed_job(5, job_type="t", payload=payload or {}, **job_fields)
    ctx = JobContext(job.id, job.attempts, max_message_bytes=CAPS.max_error_bytes)
    return executor_for(fn, payload_model=payload_model).run_sync(job, ctx, contextlib.nullcontext)


def test_a_result_is_stored_as_json():
    finish = run(lambda payload, ctx: {"n": 1, "s": "é"})
    assert (finish.job_id, finish.run, finish.outcome) == (5, 1, "completed")
    assert json.loads(finish.result_json) == {"n": 1, "s": "é"}
    assert finish.error is None and finish.retry_in is None


def test_a_job_of_an_unknown_type_fails_naming_the_worker():
    job = claimed_job(5, job_type="resize")
    finish = executor_for(lambda p, c: None).run_sync(job, JobContext(5, 1), contextlib.nullcontext)
    assert finish.outcome == "failed" and finish.retry_in is None
    assert finish.error == "unknown job type 'resize': no handler on worker w1"


def test_an_invalid_payload_fails_without_a_retry():
    class Size(BaseModel):
        width: int

    finish = run(lambda payload, ctx: payload.width, {"width": "wide"}, payload_model=Size)
    assert finish.outcome == "failed" and finish.retry_in is None
    assert finish.error.startswith("invalid payload: payload for t: width")
    assert run(lambda payload, ctx: payload.width, {"width": 3}, payload_model=Size).outcome == (
        "completed"
    )


def test_an_exception_fails_the_attempt_with_its_traceback_and_a_backed_off_retry():
    def boom(payload, ctx):
        raise ValueError("no such file")

    finish = run(boom, attempts=2, max_retries=3)
    assert finish.outcome == "failed" and finish.error == "ValueError: no such file"
    assert "Traceback" in finish.traceback and "boom" in finish.traceback
    assert finish.retry_in == 2.0  # the second failed attempt: base 1 s doubled, no jitter
    assert run(boom, attempts=4, max_retries=3).retry_in is None  # out of retries: dead


def test_the_job_overrides_the_workers_backoff():
    def boom(payload, ctx):
        raise ValueError

    assert run(boom, retry_base_delay=5.0).retry_in == 5.0


@pytest.mark.parametrize(
    ("exc", "outcome", "error", "retry_in"),
    [
        (PermanentError("bad input"), "failed", "PermanentError: bad input", None),
        (Retry(7, "rate limited"), "failed", "Retry: rate limited", 7.0),
        (Snooze(30), "snoozed", "Snooze: snoozed for 30", 30.0),
        (Cancelled("by the user"), "cancelled", "cancelled: by the user", None),
        (ForcedCancel(), "cancelled", "cancelled", None),
        (JobTimeout(), "timeout", "timeout: the attempt ran past its time limit", 1.0),
    ],
)
def test_what_each_stop_means(exc, outcome, error, retry_in):
    def stop(payload, ctx):
        raise exc

    finish = run(stop)
    assert (finish.outcome, finish.error, finish.retry_in) == (outcome, error, retry_in)


def test_a_timeout_names_the_jobs_limit():
    def slow(payload, ctx):
        raise JobTimeout

    assert run(slow, time_limit=2.5).error == (
        "timeout: the attempt ran past its time limit of 2.5s"
    )


def test_an_unstorable_result_fails_the_attempt_naming_the_problem():
    finish = run(lambda payload, ctx: {"x": math.nan})
    assert finish.outcome == "failed" and finish.result_json is None
    assert finish.error.startswith("cannot store the result: Unstorable: result holds NaN")
    assert finish.retry_in == 1.0  # a failure like any other: it may go better next time
    finish = run(lambda payload, ctx: "x" * 2000)
    assert "result is 2002 bytes, more than the cap of 1000" in finish.error
    finish = run(lambda payload, ctx: object())
    assert "result is not JSON: a object is not JSON" in finish.error


def test_an_exception_whose_text_raises_still_ends_the_attempt():
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    def boom(payload, ctx):
        raise Unprintable

    finish = run(boom)
    assert finish.outcome == "failed" and finish.retry_in == 1.0
    assert finish.error == "Unprintable (its description raised RuntimeError)"


def test_an_exception_whose_text_raises_still_ends_the_attempt_when_tracing(monkeypatch):
    """OpenTelemetry records a span's exception with str(exc): a handler's exception whose
    __str__ raises must still be the attempt's failure, not the tracer's."""
    from jq_cli.observe import tracing
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    monkeypatch.setattr(tracing, "_enabled", lambda: True)
    monkeypatch.setattr(trace, "get_tracer", provider.get_tracer)

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    def boom(payload, ctx):
        raise Unprintable

    finish = run(boom)
    assert finish.outcome == "failed"
    assert finish.error == "Unprintable (its description raised RuntimeError)"
    (span,) = spans.get_finished_spans()
    assert span.status.description == "Unprintable"


def test_an_error_message_with_nul_and_past_the_limit_is_kept_storable():
    def boom(payload, ctx):
        raise ValueError("a\x00b" + "é" * 1000)

    finish = run(boom)
    assert "\x00" not in finish.error and finish.error.startswith("ValueError: a\\x00b")
    assert len(finish.error.encode()) <= CAPS.max_error_bytes
    assert "JQ_MAX_ERROR_BYTES" in finish.error
    assert len(finish.traceback.encode()) <= CAPS.max_error_bytes


def test_a_sync_handler_that_returns_a_coroutine_fails_telling_to_declare_it_async():
    async def later():
        return 1

    finish = run(lambda payload, ctx: later())
    assert finish.outcome == "failed"
    assert "declare it `async def`" in finish.error


def test_the_guard_spans_the_handler_only():
    spans: list[str] = []

    @contextlib.contextmanager
    def guard():
        spans.append("in")
        yield
        spans.append("out")

    def handler(payload, ctx):
        spans.append("handler")
        return None

    job = claimed_job(5, job_type="t")
    finish = executor_for(handler).run_sync(job, JobContext(5, 1), guard)
    assert finish.outcome == "completed" and spans == ["in", "handler", "out"]


def test_an_async_handler_and_its_cancellation():
    async def handler(payload, ctx):
        return {"ok": True}

    async def forever(payload, ctx):
        await asyncio.sleep(60)

    job = claimed_job(5, job_type="t")
    finish = asyncio.run(executor_for(handler).run_async(job, JobContext(5, 1), lambda: "x"))
    assert finish.outcome == "completed" and finish.result_json == '{"ok":true}'

    async def cancelled(reason: str):
        task = asyncio.ensure_future(
            executor_for(forever).run_async(job, JobContext(5, 1), lambda: reason)
        )
        await asyncio.sleep(0.01)
        task.cancel()  # what the worker does past a time limit or a cancel's grace
        return await task

    assert asyncio.run(cancelled("timeout")).outcome == "timeout"
    assert asyncio.run(cancelled("cancelled")).outcome == "cancelled"


def test_failure_never_raises():
    class Worse(BaseException):
        def __str__(self) -> str:
            raise Worse

    executor = executor_for(lambda p, c: None)
    finish = executor.failure(claimed_job(5, job_type="t"), Worse(), prefix="p: ")
    assert finish.outcome == "failed" and finish.error.startswith("p: Worse (its description")
