"""What a submitted job may look like: the one validation for the CLI, the Python API, bulk files
and the HTTP shim. Everything is checked here, before anything is written."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jq_cli.errors import InvalidInput
from jq_cli.model.durations import parse_duration, parse_instant
from jq_cli.model.states import Priority
from jq_cli.store import NewJob

# Job types, queues and schedules become queue names, Redis keys and log fields: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
NAME_RULE = "letters, digits, '_', '.', '-', starting with a letter, at most 100 characters"
MAX_DEPTH = 32
MAX_RETRIES = 100
MAX_DELAY = 366 * 86400
MAX_PAST = 86400  # run_at this far in the past is surely a mistake (a wrong year, a wrong zone)


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise InvalidInput(f"{what} {value!r} is not a valid name ({NAME_RULE})")
    return value


def parse_priority(value: str | int | Priority) -> Priority:
    if isinstance(value, Priority):
        return value
    try:
        return Priority(str(value).lower())
    except ValueError:
        from jq_cli.errors import did_you_mean

        hint = did_you_mean(str(value).lower(), [p.value for p in Priority])
        raise InvalidInput(f"priority must be high, medium or low, got {value!r}{hint}") from None


def _depth(value: Any, limit: int) -> int:
    stack, deepest = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


# payload_json's encoding, refusing NaN and ±Infinity (PostgreSQL's jsonb has neither). One encoder
# for every payload: json.dumps with options builds a new one per call, a third of its cost.
_PAYLOAD_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_payload(payload: Any, max_bytes: int) -> str:
    """The payload as compact JSON, after every check a job payload must pass. Raises InvalidInput."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
    deep = str(too_deep())
    try:
        text = _PAYLOAD_ENCODER.encode(payload)
    except ValueError as exc:
        if "ircular" in str(exc):  # a payload that holds itself is nested without end
            raise InvalidInput(deep) from None
        raise InvalidInput(
            "payload holds NaN or Infinity, which JSON and PostgreSQL's jsonb cannot store"
        ) from None
    except TypeError as exc:
        raise InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    except RecursionError:  # nested past Python's own limit (or holding itself)
        raise InvalidInput(deep) from None
    # Every level of nesting opens a bracket in the text, so a payload with few brackets needs no
    # walk of its tree (a walk cost as much as the encoding); the brackets of strings only make
    # the count larger, never smaller.
    if text.count("{") + text.count("[") + 1 > MAX_DEPTH and _depth(payload, MAX_DEPTH) > MAX_DEPTH:
        raise InvalidInput(deep)
    if "\\u0000" in text or "\x00" in text:
        raise InvalidInput("payload contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("payload contains a lone surrogate: it is not valid Unicode") from None
    if size > max_bytes:
        raise InvalidInput(
            f"payload is {size} bytes, more than the cap of {max_bytes} (JQ_MAX_PAYLOAD_BYTES)"
        )
    return text


def payload_checker(schema: dict[str, Any] | None) -> Any:
    """A validator of payloads against a registered JSON Schema (None: any object will do)."""
    if schema is None:
        return None
    from jsonschema import Draft202012Validator

    try:
        Draft202012Validator.check_schema(schema)
    except Exception:  # a schema no validator understands checks nothing rather than refuse all
        return None
    return Draft202012Validator(schema)


def check_payload(job_type: str, payload: Any, checker: Any) -> None:
    """Raise InvalidInput naming the first field of `payload` that the type's schema refuses."""
    if checker is None:
        return
    error = next(iter(checker.iter_errors(payload)), None)
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path)
    raise InvalidInput(f"payload for {job_type}: {where + ': ' if where else ''}{error.message}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (PostgreSQL's jsonb cannot store it)")


def too_deep(source: str = "payload") -> InvalidInput:
    """The error of a payload (or a line, or a body) nested past MAX_DEPTH."""
    return InvalidInput(f"{source} is nested deeper than {MAX_DEPTH} levels")


def decode_json(text: str | bytes, source: str = "payload") -> Any:
    """json.loads for text a user sent. JSON nested past Python's recursion limit is refused as
    InvalidInput, the same rule as MAX_DEPTH (encode_payload): the decoder recurses once a level,
    so a body of 100,000 brackets would otherwise end in a RecursionError. Raises ValueError
    (json.JSONDecodeError) for text that is not JSON, for its caller to word."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep(source) from None


def parse_payload_text(text: str, source: str = "payload") -> dict:
    try:
        value = decode_json(text, source)
    except ValueError as exc:
        if not isinstance(exc, json.JSONDecodeError):
            raise InvalidInput(f"{source} is not valid JSON: {exc}") from None
        raise InvalidInput(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


class JobRequest(BaseModel):
    """One job to submit: the object of a bulk file line, of the Python API and of POST /jobs."""

    model_config = ConfigDict(extra="forbid")

    job_type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.MEDIUM
    max_retries: int | None = Field(None, ge=0, le=MAX_RETRIES)
    queue: str = "default"
    delay: float | str | None = None
    run_at: datetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    retry_base_delay: float | None = Field(None, gt=0, le=86400)
    retry_max_delay: float | None = Field(None, gt=0, le=7 * 86400)
    retry_jitter: float | None = Field(None, ge=0, le=1)
    # Seconds (or "30s", "5m") the attempt may run; over it the attempt ends `timeout`.
    time_limit: float | str | None = None
    # Unique jobs and dependencies (jq_cli.model.unique, jq_cli.model.workflows).
    unique_for: float | str | None = None
    unique_on: list[str] | None = Field(None, min_length=1, max_length=50)
    depends_on: list[int] = Field(default_factory=list, max_length=1000)
    on_parent_failure: Literal["cancel", "run"] = "cancel"

    @field_validator("job_type")
    @classmethod
    def _type_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"not a valid job type name ({NAME_RULE})")
        return value

    @field_validator("queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"not a valid queue name ({NAME_RULE})")
        return value

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value, "time_limit")
        except InvalidInput as exc:
            raise ValueError(exc.message.removeprefix("time_limit: ")) from None
        if not 0 < seconds <= MAX_DELAY:
            raise ValueError(f"must be more than 0 and at most {MAX_DELAY // 86400} days")
        return seconds

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value, "delay")
        except InvalidInput as exc:
            raise ValueError(exc.message.removeprefix("delay: ")) from None
        if seconds > MAX_DELAY:
            raise ValueError(f"must be at most {MAX_DELAY // 86400} days")
        return seconds

    @field_validator("unique_for")
    @classmethod
    def _unique_for(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value, "unique_for")
        except InvalidInput as exc:
            raise ValueError(exc.message.removeprefix("unique_for: ")) from None
        if not 0 < seconds <= MAX_DELAY:
            raise ValueError(f"must be more than 0 and at most {MAX_DELAY // 86400} days")
        return seconds

    @field_validator("depends_on")
    @classmethod
    def _parents(cls, value: list[int]) -> list[int]:
        if any(p < 1 for p in value):
            raise ValueError("must be job ids (1 or more)")
        return list(dict.fromkeys(value))

    @field_validator("run_at", mode="before")
    @classmethod
    def _run_at(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_instant(value, "run_at")
            except InvalidInput as exc:
                raise ValueError(exc.message.removeprefix("run_at: ")) from None
        return value

    @field_validator("idempotency_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        if value is not None and ("\x00" in value or not value.isprintable()):
            raise ValueError("must be printable text")
        return value

    @model_validator(mode="after")
    def _when(self) -> JobRequest:
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give either delay or run_at, not both")
        if self.run_at is not None:
            if self.run_at.tzinfo is None:
                self.run_at = self.run_at.replace(tzinfo=UTC)
            now = datetime.now(UTC)
            if self.run_at < now - timedelta(seconds=MAX_PAST):
                raise ValueError("run_at is more than a day in the past")
            if self.run_at > now + timedelta(seconds=MAX_DELAY):
                raise ValueError(f"run_at is more than {MAX_DELAY // 86400} days in the future")
        return self

    @classmethod
    def parse(cls, data: Any, where: str = "") -> JobRequest:
        """Validate a dict into a JobRequest; raises InvalidInput naming the field (and `where`)."""
        prefix = f"{where}: " if where else ""
        if not isinstance(data, dict):
            raise InvalidInput(f"{prefix}a job must be a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "job"
            message = err["msg"].removeprefix("Value error, ")
            raise InvalidInput(f"{prefix}{field}: {message}") from None

    def with_defaults(self, defaults: dict[str, Any]) -> JobRequest:
        """This request with a handler's declared defaults (@job) for the fields it left unset."""
        unset = {
            k: v
            for k, v in defaults.items()
            if k not in self.model_fields_set and k in type(self).model_fields
        }
        if not unset:
            return self
        return type(self).parse({**self.model_dump(exclude_unset=True), **unset})

    def to_new_job(self, payload_text: str, default_max_retries: int) -> NewJob:
        return NewJob(
            job_type=self.job_type,
            payload_json=payload_text,
            queue=self.queue,
            priority=self.priority.amqp,
            max_retries=default_max_retries if self.max_retries is None else self.max_retries,
            delay=self.delay if isinstance(self.delay, float) else None,
            run_at=self.run_at,
            idempotency_key=self.idempotency_key,
            retry_base_delay=self.retry_base_delay,
            retry_max_delay=self.retry_max_delay,
            retry_jitter=self.retry_jitter,
            time_limit=self.time_limit if isinstance(self.time_limit, float) else None,
            unique_for=self.unique_for if isinstance(self.unique_for, float) else None,
            depends_on=tuple(self.depends_on),
            on_parent_failure=self.on_parent_failure,
        )
