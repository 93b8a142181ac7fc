"""The one error tree of jq: every layer raises these, every front end renders them in one place."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

# Exit codes, the same for every command (`jq help exit-codes`): 0 success (an empty list too),
# 1 the operation failed, 2 bad usage or input, 3 a service unavailable, 4 not found, 5 refused.
EXIT_CODES = {
    0: "success (an empty list too)",
    1: "the operation failed (an invalid transition, a conflict, a job that did not complete with --wait)",
    2: "bad usage or input; nothing was written",
    3: "a service is unavailable (PostgreSQL, RabbitMQ, Redis) or the schema is not migrated",
    4: "not found (a job, a schedule)",
    5: "refused: a destructive command without --yes where no terminal can ask, or answered no",
    6: "--wait gave up: its --timeout passed before the job ended (the job goes on)",
}
EXIT_WAIT_TIMEOUT = 6


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `choices`, or "" when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class JqError(Exception):
    """Base of every error jq reports to a user. `exit_code` is what the CLI exits with."""

    exit_code = 1
    http_status = 500
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(JqError):
    """The request is malformed: bad option, payload, duration, name. Nothing was written."""

    exit_code = 2
    http_status = 422
    kind = "invalid-input"


class UnknownParameter(InvalidInput):
    """A query parameter the endpoint does not know: refused rather than ignored, since an
    ignored filter (`?status=dead`) answers with everything."""

    http_status = 400


class NotFound(JqError):
    """The job, schedule or type named does not exist."""

    exit_code = 4
    http_status = 404
    kind = "not-found"


class InvalidTransition(JqError):
    """The job is not in a state that allows the operation (e.g. retrying a completed job)."""

    exit_code = 1
    http_status = 409
    kind = "invalid-transition"

    def __init__(self, message: str, *, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state  # the state the job was found in, for callers that decide by it


class Conflict(JqError):
    """The thing to create exists already (a schedule name, for example)."""

    exit_code = 1
    http_status = 409
    kind = "conflict"


class Refused(JqError):
    """A destructive action without consent: no --yes where no terminal can ask, or a "no"."""

    exit_code = 5
    http_status = 409
    kind = "refused"


class Service(StrEnum):
    """The outside systems jq depends on, by the names its messages give them."""

    POSTGRESQL = "PostgreSQL"
    RABBITMQ = "RabbitMQ"
    REDIS = "Redis"


class ServiceUnavailable(JqError):
    """PostgreSQL, RabbitMQ or Redis could not be reached. The message names it and its URL.
    Each service raises its own subclass, so that callers decide by type which one is down."""

    exit_code = 3
    http_status = 503
    kind = "service-unavailable"

    def __init__(self, service: Service | str, url: str, detail: str) -> None:
        from jq_cli.redaction import mask_url, redact, secrets_in

        self.service = Service(service)
        self.url = mask_url(url)
        # A driver's message may quote the URL, or pieces of a password it misparsed.
        detail = redact(detail, secrets_in(url))
        super().__init__(f"{self.service} unavailable at {self.url}: {detail}")


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL could not be reached (or dropped the connection, or timed a statement out)."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(Service.POSTGRESQL, url, detail)


class Deadlock(DatabaseUnavailable):
    """PostgreSQL aborted a statement to break a deadlock (SQLSTATE 40P01): nothing it did
    stands, the connection is fine, and the same statement may simply run again. A kind of
    DatabaseUnavailable for callers that only try again later, but never logged as an outage."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(url, detail)
        self.message = f"{self.service} broke a deadlock at {self.url}: {detail}"
        self.args = (self.message,)


class BrokerUnavailable(ServiceUnavailable):
    """RabbitMQ could not be reached, or closed the connection or channel."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(Service.RABBITMQ, url, detail)


class TelemetryUnavailable(ServiceUnavailable):
    """Redis could not be reached. Jobs still run; only live telemetry is missing."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(Service.REDIS, url, detail)


class StoreError(JqError):
    """PostgreSQL refused a statement for a reason that is not an outage: a query error or a
    violated constraint. A bug or a schema out of step with this code, not the user's input; the
    driver's error is kept as __cause__ for the log."""

    exit_code = 1
    http_status = 500
    kind = "store-error"


class SchemaNotMigrated(JqError):
    """The database has no jq schema, or an older one than this code needs."""

    exit_code = 3
    http_status = 503
    kind = "schema-not-migrated"
