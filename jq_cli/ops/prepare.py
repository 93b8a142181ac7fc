"""One preparation of a job, for every front door (Client, AsyncClient, the HTTP shim, the CLI,
bulk files, schedules, workflows): the rules of its type, its @job defaults, the payload check,
encoding, its unique key and trace context (docs/design.md, Code layout: ops).

The steps do no I/O. What they need from PostgreSQL (the rules a worker registered for a type
whose handler this process does not import) is looked up by the caller, sync or async, through
JobTypes.cached / JobTypes.learn, so that both kinds of client hold a job to the same rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from jq_cli.errors import InvalidInput, did_you_mean
from jq_cli.model.states import Priority
from jq_cli.store.records import NewJob

if TYPE_CHECKING:
    from jq_cli.config import Settings
    from jq_cli.handlers.registry import Registry
    from jq_cli.model.jobspec import JobRequest

SCHEMA_TTL = 30.0  # seconds a payload schema read from PostgreSQL is trusted before re-reading
TypeInfo = tuple[bool, Any, dict[str, Any]]  # store.job_type_info: known, JSON Schema, defaults


@dataclass(frozen=True)
class TypeRules:
    """What a job type's submits are held to: its payload check (raising InvalidInput), its @job
    defaults (queue, priority, retries ...), and its unique period and keys."""

    check: Callable[[Any], object]
    defaults: dict[str, Any] = field(default_factory=dict)
    unique_for: float | None = None
    unique_on: tuple[str, ...] | None = None


def _no_check(payload: Any) -> object:
    return payload


class JobTypes:
    """The rules of the job types a client has seen: a handler this process imported, else what
    its workers registered in PostgreSQL (re-read after SCHEMA_TTL, so a deploy's new schema is
    seen). Not thread-safe, as the clients that hold it."""

    def __init__(self, registry: Callable[[], Registry]) -> None:
        self._registry = registry  # loaded on first use: reading jobs needs no handler models
        self._learned: dict[str, tuple[float, TypeRules]] = {}

    def cached(self, job_type: str) -> TypeRules | None:
        """The rules known without asking PostgreSQL, or None: then call learn()."""
        handler = self._registry().get(job_type)
        if handler is not None:
            return TypeRules(
                handler.validate,
                handler.defaults.as_dict(),
                handler.unique_for,
                handler.unique_on,
            )
        learned = self._learned.get(job_type)
        if learned is not None and time.monotonic() - learned[0] <= SCHEMA_TTL:
            return learned[1]
        return None

    def learn(self, job_type: str, info: TypeInfo) -> TypeRules | None:
        """The rules from what store.job_type_info read; None for a type no worker registered
        (a type seen before keeps its last rules rather than turn unknown)."""
        from jq_cli.model.jobspec import check_payload, payload_checker

        known, schema, defaults = info
        if not known:
            learned = self._learned.get(job_type)
            return None if learned is None else learned[1]
        checker = payload_checker(schema)
        check = (
            _no_check
            if checker is None
            else lambda payload: check_payload(job_type, payload, checker)
        )
        rules = TypeRules(check, dict(defaults))
        self._learned[job_type] = (time.monotonic(), rules)
        return rules

    def unknown(self, job_type: str, registered: Sequence[str]) -> InvalidInput:
        """The refusal of a type neither imported nor registered, with a "did you mean"."""
        names = self._registry().names()
        hint = did_you_mean(job_type, [*names, *registered])
        return InvalidInput(
            f"unknown job type {job_type!r}{hint} (built in: {', '.join(names)}; others must be "
            "registered by a running `jq worker --import MODULE`)"
        )


def request_of(
    job_type: str, payload: dict[str, Any] | None, options: dict[str, Any]
) -> JobRequest:
    """The JobRequest of a Python API submit. Only the options the caller gave are set, so that
    the rest fall to the type's @job defaults, then jq's. Raises InvalidInput."""
    from jq_cli.model.jobspec import JobRequest

    given: dict[str, Any] = {}
    for key, value in options.items():
        if value is None or (key in ("unique_on", "depends_on") and not value):
            continue
        if isinstance(value, Priority):
            value = value.value
        elif key in ("unique_on", "depends_on") and not isinstance(value, list):
            value = list(value)
        given[key] = value
    return JobRequest.parse(
        {"job_type": job_type, "payload": {} if payload is None else payload, **given}
    )


def prepare(request: JobRequest, rules: TypeRules, settings: Settings) -> NewJob:
    """The job ready to insert: payload checked, @job defaults applied where the request left a
    field unset, payload encoded, unique key and the caller's trace context attached. Raises
    InvalidInput."""
    from jq_cli.model.jobspec import encode_payload
    from jq_cli.model.unique import unique_key
    from jq_cli.observe import tracing

    rules.check(request.payload)
    if rules.defaults:
        request = request.with_defaults(rules.defaults)
    text = encode_payload(request.payload, settings.max_payload_bytes)
    new = request.to_new_job(text, settings.default_max_retries)
    period = new.unique_for or rules.unique_for
    on = request.unique_on or rules.unique_on
    if request.unique_on and not period:
        raise InvalidInput("unique_on: give unique_for too (how long a job stays unique)")
    key = unique_key(request.job_type, request.payload, on) if period else None
    trace = tracing.current_context_json()
    if key is None and period is None and trace is None:
        return new  # the common case: a frozen dataclass copied for nothing costs microseconds
    return replace(new, unique_key=key, unique_for=period, trace_context=trace)
