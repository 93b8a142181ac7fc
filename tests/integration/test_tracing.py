"""Tracing: the trace context at submit travels with the job; the worker runs the
handler in a child span, with claim and finish spans. Tested with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import settings_env, wait_for

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans():
    # The global provider can be set once per process: one exporter, cleared for each test.
    if not isinstance(trace.get_tracer_provider(), otel_sdk.TracerProvider):
        provider = otel_sdk.TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_handler_runs_in_a_child_span_of_the_submitters_trace(
    ops, spans, start_worker, start_scheduler
):
    tracer = trace.get_tracer("the-application")
    with tracer.start_as_current_span("POST /orders") as request:
        job_id = ops.submit("t_record", {"traced": True}, queue="default")
    stored = ops.get(job_id)["trace_context"]
    assert stored["traceparent"].split("-")[1] == format(
        request.get_span_context().trace_id, "032x"
    )
    start_scheduler()
    start_worker()
    wait_for(lambda: ops.get(job_id)["state"] == "completed", 20, what="the traced job")

    def run_span():
        return next((s for s in spans.get_finished_spans() if s.name == "jq.run t_record"), None)

    run = wait_for(run_span, 10, what="the handler's span")
    assert run.context.trace_id == request.get_span_context().trace_id
    assert run.parent is not None and run.parent.span_id == request.get_span_context().span_id
    assert run.kind == trace.SpanKind.CONSUMER
    assert dict(run.attributes) == {
        "jq.job.id": job_id,
        "jq.job.type": "t_record",
        "jq.job.queue": "default",
        "jq.job.attempt": 1,
    }
    names = {s.name for s in spans.get_finished_spans()}
    wait_for(lambda: "jq.finish" in {s.name for s in spans.get_finished_spans()}, 10, what="finish")
    assert "jq.claim" in names


def test_a_failing_handler_marks_its_span_as_an_error(ops, spans, start_worker, start_scheduler):
    job_id = ops.submit("t_fail", {}, max_retries=0)
    start_scheduler()
    start_worker()
    wait_for(lambda: ops.get(job_id)["state"] == "dead", 20, what="the failing job dead")
    run = wait_for(
        lambda: next((s for s in spans.get_finished_spans() if s.name == "jq.run t_fail"), None),
        10,
        what="the handler's span",
    )
    assert run.status.status_code == trace.StatusCode.ERROR
    assert ops.get(job_id)["trace_context"] is None  # submitted outside any span
    assert run.parent is None


BLOCK_OTEL = """
import importlib.abc, sys
class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ImportError(f"no module named {name!r} (the [otel] extra is not installed)")
        return None
sys.meta_path.insert(0, NoOtel())
"""

RUN_A_JOB = """
import json, sys, threading
from jq_cli.config import load_settings
from jq_cli.handlers import load_builtins
from jq_cli.client import Client
from jq_cli.scheduler.daemon import Scheduler
from jq_cli.worker.daemon import Worker
with Client(load_settings()) as ops:
    job_id = ops.submit("noop", {})
    worker, scheduler = Worker(load_settings(), load_builtins()), Scheduler(load_settings())
    threads = [threading.Thread(target=d.run, daemon=True) for d in (worker, scheduler)]
    for t in threads:
        t.start()
    job = ops.wait(job_id, timeout=30)
    worker.request_stop()
    scheduler.request_stop()
    for t in threads:
        t.join(30)
    print(json.dumps({"state": job["state"], "trace_context": job["trace_context"]}))
"""


def run_python(settings, script: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        env=settings_env(settings),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_the_extra_jobs_run_as_before(settings):
    assert run_python(settings, BLOCK_OTEL + RUN_A_JOB) == {
        "state": "completed",
        "trace_context": None,
    }


def test_submitting_imports_no_opentelemetry(settings):
    script = textwrap.dedent(
        """
        import json, sys
        from jq_cli.config import load_settings
        from jq_cli.client import Client
        with Client(load_settings()) as ops:
            job_id = ops.submit("noop", {})
            print(json.dumps({"imported": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
                              "trace_context": ops.get(job_id)["trace_context"]}))
        """
    )
    assert run_python(settings, script) == {"imported": [], "trace_context": None}
