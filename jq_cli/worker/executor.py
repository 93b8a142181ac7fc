"""The executor: one claimed job in, one storable outcome out. Nothing a handler or its payload
model does (return, raise, hang aside) escapes it; the pools around it own threads and time."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jq_cli.errors import InvalidInput
from jq_cli.handlers.registry import (
    Cancelled,
    ForcedCancel,
    Handler,
    JobContext,
    JobTimeout,
    PermanentError,
    Registry,
    Retry,
    Snooze,
)
from jq_cli.model.retry import Backoff
from jq_cli.observe import tracing
from jq_cli.store.records import Finish
from jq_cli.store.work import ClaimedJob
from jq_cli.worker.outcomes import SizeCaps, Unstorable, encode_result, sanitise


@dataclass(frozen=True)
class Executor:
    """Turns a job into its outcome. Shared by every pool (threads, processes, the event loop)."""

    registry: Registry
    backoff: Backoff
    caps: SizeCaps
    worker_name: str

    def prepare(self, job: ClaimedJob) -> tuple[Handler, Any] | Finish:
        """The handler and validated payload, or the outcome that ends the attempt at once."""
        handler = self.registry.get(job.job_type)
        if handler is None:
            return Finish(
                job.id,
                job.run_count,
                "failed",
                error=f"unknown job type {job.job_type!r}: no handler on worker {self.worker_name}",
            )
        try:
            return handler, handler.validate(job.payload)
        except InvalidInput as exc:
            return Finish(job.id, job.run_count, "failed", error=f"invalid payload: {exc.message}")
        except BaseException as exc:  # a validator that raises something else is the model's bug
            return self.failure(job, exc, prefix="payload validation raised ")

    def run_sync(self, job: ClaimedJob, ctx: JobContext, guard: Callable[[], Any]) -> Finish:
        """Run a sync handler in this thread. `guard()` is a context manager marking the span in
        which the worker may raise JobTimeout or ForcedCancel into the thread."""
        try:
            prepared = self.prepare(job)
            if isinstance(prepared, Finish):
                return sanitise(prepared, self.caps)
            handler, payload = prepared
            with guard(), tracing.handler_span(job):  # a child span of the submitter's
                value = handler.fn(payload, ctx)
            if asyncio.iscoroutine(value):  # a sync function that returned a coroutine
                value.close()
                raise TypeError("the handler returned a coroutine: declare it `async def`")
            return self.success(job, value)
        except BaseException as exc:
            return self.failure(job, exc)

    async def run_async(
        self, job: ClaimedJob, ctx: JobContext, stop_reason: Callable[[], str]
    ) -> Finish:
        """Run an async handler on the event loop. A cancelled task ends as `stop_reason()` says
        (timeout, cancelled) why the worker cancelled it."""
        try:
            prepared = self.prepare(job)
            if isinstance(prepared, Finish):
                return sanitise(prepared, self.caps)
            handler, payload = prepared
            with tracing.handler_span(job):
                value = await handler.fn(payload, ctx)
            return self.success(job, value)
        except asyncio.CancelledError as exc:
            reason = stop_reason()
            stop: BaseException = JobTimeout(exc) if reason == "timeout" else ForcedCancel(exc)
            return self.failure(job, stop)
        except BaseException as exc:
            return self.failure(job, exc)

    def success(self, job: ClaimedJob, value: Any) -> Finish:
        try:
            text = encode_result(value, self.caps)
        except Unstorable as exc:
            return self.failure(job, exc, prefix="cannot store the result: ")
        return Finish(job.id, job.run_count, "completed", result_json=text)

    def failure(self, job: ClaimedJob, exc: BaseException, prefix: str = "") -> Finish:
        """The outcome an exception means. Never raises (a broken __str__ included)."""
        try:
            return sanitise(self._failure(job, exc, prefix), self.caps)
        except BaseException as inner:  # the exception's own text or traceback is broken
            return Finish(
                job.id,
                job.run_count,
                "failed",
                error=f"{prefix}{type(exc).__name__} (its description raised {type(inner).__name__})",
                retry_in=self._retry_in(job),
            )

    def _failure(self, job: ClaimedJob, exc: BaseException, prefix: str) -> Finish:
        tb = "".join(traceback.format_exception(exc))
        if isinstance(exc, Cancelled | ForcedCancel):
            text = str(exc)
            return Finish(
                job.id,
                job.run_count,
                "cancelled",
                error=f"cancelled: {text}" if text else "cancelled",
            )
        if isinstance(exc, Snooze):
            return Finish(job.id, job.run_count, "snoozed", error=describe(exc), retry_in=exc.delay)
        if isinstance(exc, JobTimeout):
            limit = job.time_limit
            error = (
                f"timeout: the attempt ran past its time limit{f' of {limit:g}s' if limit else ''}"
            )
            return Finish(
                job.id,
                job.run_count,
                "timeout",
                error=error,
                traceback=tb,
                retry_in=self._retry_in(job),
            )
        if isinstance(exc, Retry):
            retry_in = exc.delay if job.attempts <= job.max_retries else None
            return Finish(
                job.id,
                job.run_count,
                "failed",
                error=describe(exc),
                traceback=tb,
                retry_in=retry_in,
            )
        if isinstance(exc, PermanentError):
            return Finish(
                job.id, job.run_count, "failed", error=prefix + describe(exc), traceback=tb
            )
        return Finish(
            job.id,
            job.run_count,
            "failed",
            error=prefix + describe(exc),
            traceback=tb,
            retry_in=self._retry_in(job),
        )

    def _retry_in(self, job: ClaimedJob) -> float | None:
        if job.attempts > job.max_retries:
            return None
        policy = self.backoff.with_overrides(
            job.retry_base_delay, job.retry_max_delay, job.retry_jitter
        )
        return policy.delay(job.attempts)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def no_guard() -> Iterator[None]:
    yield
