"""The registry of job types: a decorator registers `fn(payload, ctx) -> result` under a name."""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from jq_cli.errors import InvalidInput
from jq_cli.model.limits import Limit

_JOB_LOG = logging.getLogger("jq.job")


class PermanentError(Exception):
    """Raised by a handler for a failure that no retry can fix: the job goes dead at once."""


class InvalidPayload(PermanentError):
    """Raised by a handler (or its payload model) when the payload cannot be run."""


class Cancelled(Exception):
    """Raised by a handler that saw ctx.cancelled and stopped: the job ends cancelled. The worker
    also raises it into a handler that ignores a cancel request past the stop grace."""


class JobTimeout(BaseException):
    """Raised into a handler that outlived its time limit: the attempt ends `timeout`. A
    BaseException, so that a handler's `except Exception` cannot swallow it."""


class ForcedCancel(BaseException):
    """Raised into a handler that ignored a cancel request past the stop grace: the attempt
    ends `cancelled`. A BaseException for the same reason as JobTimeout."""


class Snooze(Exception):
    """Raised by a handler to run again after `delay` seconds without spending an attempt
    (the attempt is recorded as `snoozed`)."""

    def __init__(self, delay: float | str = 0) -> None:
        super().__init__(f"snoozed for {delay}")
        self.delay = _seconds(delay, "Snooze delay")


class Retry(Exception):
    """Raised by a handler to retry after `delay` seconds instead of the back-off; the attempt
    counts (failed), and a job with no attempts left goes dead."""

    def __init__(self, delay: float | str = 0, reason: str = "") -> None:
        super().__init__(reason or f"retry requested in {delay}")
        self.delay = _seconds(delay, "Retry delay")


def _seconds(value: float | str, what: str) -> float:
    from jq_cli.model.durations import parse_duration

    seconds = parse_duration(value, what) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


class CancelFlag(Protocol):
    """A threading.Event, or a multiprocessing one in the process pool."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class JobContext:
    """What a handler may know and do about the job it runs."""

    def __init__(
        self,
        job_id: int,
        attempt: int,
        *,
        settings: Any = None,
        on_progress: Callable[[int, float, str | None], None] | None = None,
        cancel_event: CancelFlag | None = None,
        time_limit: float | None = None,
        max_message_bytes: int = 65_536,
        parent_results: list[dict[str, Any]] | None = None,
    ):
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self.time_limit = time_limit  # seconds this attempt may run, None for no limit
        # An adapter, not getLogger(f"jq.job.{id}"): logging keeps every named logger forever, which
        # leaked about half a kilobyte per job in a long-running worker.
        self.logger = logging.LoggerAdapter(_JOB_LOG, {"job_id": job_id})
        self._on_progress = on_progress
        self._cancel: CancelFlag = cancel_event or threading.Event()
        self._max_message_bytes = max_message_bytes
        # A workflow step's parents, in the order given, with their results.
        self.parents: list[int] = [p["id"] for p in parent_results or []]
        self.parent_results: list[Any] = [p.get("result") for p in parent_results or []]

    @property
    def parent_result(self) -> Any:
        """The result of the first parent (a chain step's previous step), or None."""
        return self.parent_results[0] if self.parent_results else None

    @property
    def cancelled(self) -> bool:
        """True once an operator asked to cancel this job (or the worker is handing it back)."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early (and returning True) on cancellation."""
        return self._cancel.wait(timeout)

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress. Raises ValueError for what PostgreSQL cannot store (a percent that is
        not a finite number, a message with NUL or lone surrogates, or longer than
        JQ_MAX_ERROR_BYTES): the attempt then fails naming the problem."""
        from jq_cli.worker.outcomes import check_progress

        percent, message = check_progress(percent, message, self._max_message_bytes)
        if self._on_progress is not None:
            self._on_progress(self.job_id, percent, message)


@dataclass(frozen=True)
class JobDefaults:
    """What a handler declares with @job and a submit may override."""

    queue: str | None = None
    priority: str | None = None
    max_retries: int | None = None
    time_limit: float | None = None
    retry_base_delay: float | None = None
    retry_max_delay: float | None = None
    retry_jitter: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Handler:
    name: str
    fn: Callable[..., Any]
    payload_model: type[BaseModel] | None = None
    description: str = ""
    defaults: JobDefaults = field(default_factory=JobDefaults)
    limit: Limit | None = None  # concurrency and rate across every worker
    unique_for: float | None = None  # @job(unique_for="1h"), the default of its submits
    unique_on: tuple[str, ...] | None = None

    @property
    def is_async(self) -> bool:
        """An `async def` handler runs on the worker's event loop."""
        return inspect.iscoroutinefunction(self.fn)

    def payload_schema(self) -> dict[str, Any] | None:
        """The payload model as JSON Schema (registered in PostgreSQL for submit-time checks)."""
        if self.payload_model is None:
            return None
        try:
            return self.payload_model.model_json_schema()
        except Exception:  # a model pydantic cannot describe is still checked where it is imported
            return None

    def validate(self, payload: Any) -> Any:
        """The payload as the handler receives it; raises InvalidInput naming the bad field."""
        if self.payload_model is None:
            return payload
        try:
            return self.payload_model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidInput(f"payload for {self.name}: {_first_error(exc)}") from None
        except (
            Exception
        ) as exc:  # a validator's own bug (KeyError ...): still one line, no traceback
            raise InvalidInput(
                f"payload for {self.name}: the payload model raised {type(exc).__name__}: {exc}"
            ) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


@dataclass
class Registry:
    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        payload_model: type[BaseModel] | None = None,
        defaults: JobDefaults | None = None,
        limit: Limit | None = None,
    ) -> Handler:
        from jq_cli.model.jobspec import check_name

        check_name(name, "job type")
        handler = Handler(
            name,
            fn,
            payload_model,
            (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            defaults or JobDefaults(),
            None if limit is None or limit.empty else limit,
        )
        self.handlers[name] = handler
        return handler

    def get(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self.handlers)

    def limits(self) -> dict[str, Limit]:
        """The limits of the handlers that declare one."""
        return {n: h.limit for n, h in self.handlers.items() if h.limit is not None}


registry = Registry()
_builtins_loaded = False


def job(
    name: str | None = None,
    *,
    payload: type[BaseModel] | None = None,
    queue: str | None = None,
    priority: str | None = None,
    max_retries: int | None = None,
    time_limit: float | str | None = None,
    retry_base_delay: float | None = None,
    retry_max_delay: float | None = None,
    retry_jitter: float | None = None,
    concurrency: int | None = None,
    concurrency_key: str | None = None,
    rate: str | None = None,
    unique_for: float | str | None = None,
    unique_on: tuple[str, ...] | list[str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler: `@job("resize_image", payload=ResizePayload, time_limit="30s")` above
    `def resize(payload, ctx): ...` (or `async def`). With a pydantic model, jq validates payloads
    at submit and the handler receives the model instance. Queue, priority, max_retries, time
    limit and back-off are the type's defaults; a submit may override each. `concurrency=2`
    allows at most 2 running at once across every worker, `rate="10/s"` at most 10 starts a
    second; with `concurrency_key="host"` both count per payload["host"]. With
    `unique_for="1h"`, a submit of the same payload (or of the same values of the `unique_on`
    keys) within an hour of an earlier one returns that job instead of a new one."""
    from jq_cli.model.durations import parse_duration
    from jq_cli.model.jobspec import check_name, parse_priority

    if queue is not None:
        check_name(queue, "queue")
    if priority is not None:
        priority = parse_priority(priority).value
    if max_retries is not None and not 0 <= max_retries <= 100:
        raise InvalidInput(f"max_retries must be between 0 and 100, got {max_retries}")
    defaults = JobDefaults(
        queue,
        priority,
        max_retries,
        _seconds(time_limit, "time_limit") if time_limit is not None else None,
        retry_base_delay,
        retry_max_delay,
        retry_jitter,
    )
    if defaults.time_limit is not None and defaults.time_limit <= 0:
        raise InvalidInput("time_limit must be more than 0 seconds")
    limit = Limit.build(concurrency, rate, concurrency_key)
    period = None if unique_for is None else parse_duration(unique_for, "unique_for")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        handler = registry.register(name or fn.__name__, fn, payload, defaults, limit)
        handler.unique_for = period
        handler.unique_on = tuple(unique_on) if unique_on else None
        return fn

    return decorate


def load_builtins() -> Registry:
    global _builtins_loaded
    if not _builtins_loaded:
        importlib.import_module("jq_cli.handlers.builtin")
        _builtins_loaded = True
    return registry


def import_modules(modules: list[str]) -> None:
    """Import users' handler modules (jq worker --import, JQ_IMPORTS). Raises InvalidInput."""
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any error in a user's module is theirs to see, in one line
            raise InvalidInput(
                f"cannot import handler module {module!r}: {type(exc).__name__}: {exc}"
            ) from None
