"""The registry of job types: a decorator registers `fn(payload, ctx) -> result` under a name."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from jq_cli.errors import InvalidInput

_JOB_LOG = logging.getLogger("jq.job")


class PermanentError(Exception):
    """Raised by a handler for a failure that no retry can fix: the job goes dead at once."""


class InvalidPayload(PermanentError):
    """Raised by a handler (or its payload model) when the payload cannot be run."""


class Cancelled(Exception):
    """Raised by a handler that saw ctx.cancelled and stopped: the job ends cancelled."""


class JobContext:
    """What a handler may know and do about the job it runs."""

    def __init__(
        self,
        job_id: int,
        attempt: int,
        *,
        settings: Any = None,
        on_progress: Callable[[int, float, str | None], None] | None = None,
        cancel_event: threading.Event | None = None,
        parent_results: list[dict[str, Any]] | None = None,
    ):
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        # An adapter, not getLogger(f"jq.job.{id}"): logging keeps every named logger forever, which
        # leaked about half a kilobyte per job in a long-running worker.
        self.logger = logging.LoggerAdapter(_JOB_LOG, {"job_id": job_id})
        self._on_progress = on_progress
        self._cancel = cancel_event or threading.Event()
        # Issue 15: a workflow step's parents, in the order given, with their results.
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
        percent = max(0.0, min(100.0, float(percent)))
        if self._on_progress is not None:
            self._on_progress(self.job_id, percent, message)


@dataclass
class Handler:
    name: str
    fn: Callable[[Any, JobContext], Any]
    payload_model: type[BaseModel] | None = None
    description: str = ""
    unique_for: float | None = None  # issue 15: @job(unique_for="1h"), the default of its submits
    unique_on: tuple[str, ...] | None = None

    def validate(self, payload: Any) -> Any:
        """The payload as the handler receives it; raises InvalidInput naming the bad field."""
        if self.payload_model is None:
            return payload
        try:
            return self.payload_model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidInput(f"payload for {self.name}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


@dataclass
class Registry:
    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(
        self, name: str, fn: Callable, payload_model: type[BaseModel] | None = None
    ) -> Handler:
        from jq_cli.jobspec import check_name

        check_name(name, "job type")
        handler = Handler(
            name,
            fn,
            payload_model,
            (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
        )
        self.handlers[name] = handler
        return handler

    def get(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self.handlers)


registry = Registry()
_builtins_loaded = False


def job(
    name: str | None = None,
    *,
    payload: type[BaseModel] | None = None,
    unique_for: float | str | None = None,
    unique_on: tuple[str, ...] | list[str] | None = None,
) -> Callable:
    """Register a handler: `@job("resize_image", payload=ResizePayload)` above
    `def resize(payload, ctx): ...`. With a pydantic model, jq validates payloads at submit
    (where the module is imported) and the handler receives the model instance. With
    `unique_for="1h"`, a submit of the same payload (or of the same values of the `unique_on`
    keys) within an hour of an earlier one returns that job instead of a new one."""
    from jq_cli.durations import parse_duration

    period = None if unique_for is None else parse_duration(unique_for, "unique_for")

    def decorate(fn: Callable) -> Callable:
        handler = registry.register(name or fn.__name__, fn, payload)
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
