"""What the dashboard reads and how: the operations it needs (an interface, so tests pass a real
Client for their namespace), the filter, and one snapshot of everything shown."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from jq_cli.errors import DatabaseUnavailable, InvalidInput, JqError, NotFound, SchemaNotMigrated
from jq_cli.model.states import JobState, Priority

if TYPE_CHECKING:
    from jq_cli.ops.actions import ActionReport

RATE_SECONDS = 180  # the sparklines show the last three minutes
JOBS_LIMIT = 200
DEAD_LIMIT = 100


class DashboardOps(Protocol):
    """The operations `jq top` calls; jq_cli.client.Client provides them. Calls are blocking and
    the object is not thread-safe: the app makes them from one worker thread at a time."""

    settings: Any  # namespace and heartbeat_interval are read

    def stats(self) -> dict[str, Any]: ...
    def rates(self, seconds: int = ...) -> dict[str, list[int | None]]: ...
    def list_jobs(
        self,
        *,
        state: str | None = ...,
        job_type: str | None = ...,
        priority: str | None = ...,
        queue: str | None = ...,
        since: float | None = ...,
        limit: int = ...,
    ) -> list[dict[str, Any]]: ...
    def dead_letters(
        self, *, job_type: str | None = ..., limit: int = ...
    ) -> list[dict[str, Any]]: ...
    def get(self, job_id: int) -> dict[str, Any]: ...
    def retry(self, ids: list[int]) -> ActionReport: ...
    def cancel(self, ids: list[int]) -> ActionReport: ...
    def queue_pause(self, name: str) -> dict[str, Any]: ...
    def queue_resume(self, name: str) -> dict[str, Any]: ...
    def purge(
        self,
        *,
        state: str,
        older_than: float | None = ...,
        job_type: str | None = ...,
        dry_run: bool = ...,
        queue: str | None = ...,
        priority: str | None = ...,
        job_id: int | None = ...,
        finished_by: datetime | None = ...,
        at_most: int | None = ...,
    ) -> int: ...
    def purge_count(self, *, state: str, **filters: Any) -> tuple[int, datetime]: ...


FILTER_KEYS = {
    "state": "state",
    "s": "state",
    "type": "job_type",
    "t": "job_type",
    "priority": "priority",
    "p": "priority",
    "prio": "priority",
    "queue": "queue",
    "q": "queue",
    "id": "job_id",
}


@dataclass(frozen=True)
class Filter:
    """The recent-jobs filter, typed after `/`: `state:dead type:send_email priority:high queue:q`,
    or a bare job id or job type (the search)."""

    state: str | None = None
    job_type: str | None = None
    priority: str | None = None
    queue: str | None = None
    job_id: int | None = None

    @classmethod
    def parse(cls, text: str) -> Filter:
        """Raises InvalidInput for an unknown key or a value that cannot be a state/priority/id."""
        values: dict[str, Any] = {}
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            raise InvalidInput(f"filter: {exc}") from None
        for token in tokens:
            key, sep, value = token.partition(":")
            if not sep:
                key, value = (
                    ("id", token.lstrip("#")) if token.lstrip("#").isdigit() else ("type", token)
                )
            field_name = FILTER_KEYS.get(key.lower())
            if field_name is None or not value:
                raise InvalidInput(
                    f"filter: {token!r} is not key:value (keys: state, type, priority, queue, id)"
                )
            values[field_name] = value
        if "state" in values:
            values["state"] = values["state"].lower()
            if values["state"] not in {s.value for s in JobState}:
                raise InvalidInput(
                    f"filter: unknown state {values['state']!r} "
                    f"(one of: {', '.join(s.value for s in JobState)})"
                )
        if "priority" in values:
            values["priority"] = values["priority"].lower()
            if values["priority"] not in {p.value for p in Priority}:
                raise InvalidInput(
                    f"filter: unknown priority {values['priority']!r} (high, medium or low)"
                )
        if "job_id" in values:
            if not str(values["job_id"]).isdigit():
                raise InvalidInput(f"filter: job id must be a number, not {values['job_id']!r}")
            values["job_id"] = int(values["job_id"])
        return cls(**values)

    @property
    def empty(self) -> bool:
        return self == Filter()

    def describe(self) -> str:
        parts = [
            f"{label}:{value}"
            for label, value in (
                ("id", self.job_id),
                ("state", self.state),
                ("type", self.job_type),
                ("priority", self.priority),
                ("queue", self.queue),
            )
            if value is not None
        ]
        return " ".join(parts)

    def without_id(self) -> Filter:
        return replace(self, job_id=None)


@dataclass
class Snapshot:
    """Everything one refresh read. A part that failed carries its error instead of data, so the
    rest of the screen keeps working (Redis down: rates and workers say so; Postgres down: the app
    keeps the last data and says it is reconnecting)."""

    taken_at: datetime
    filter: Filter = field(default_factory=Filter)
    database_error: str | None = None
    stats: dict[str, Any] | None = None
    rates: dict[str, list[int | None]] | None = None
    rates_error: str | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    jobs_error: str | None = None
    dead: list[dict[str, Any]] = field(default_factory=list)
    dead_error: str | None = None

    @property
    def workers(self) -> list[dict[str, Any]] | None:
        return None if self.stats is None else self.stats.get("workers")

    @property
    def telemetry_error(self) -> str | None:
        if self.stats is not None and self.stats.get("telemetry_error"):
            return self.stats["telemetry_error"]
        return self.rates_error


def is_database_error(exc: JqError) -> bool:
    """True when the error means Postgres is away or unmigrated: nothing else can be read then."""
    return isinstance(exc, SchemaNotMigrated | DatabaseUnavailable)


def utc_now() -> datetime:
    return datetime.now(UTC)


def collect(
    ops: DashboardOps,
    flt: Filter,
    *,
    now: datetime | None = None,
    jobs_limit: int = JOBS_LIMIT,
    dead_limit: int = DEAD_LIMIT,
    rate_seconds: int = RATE_SECONDS,
) -> Snapshot:
    """One refresh: counts, rates, workers, the filtered recent jobs and the dead letters. Never
    raises a JqError: each part that fails records its error in the snapshot."""
    snap = Snapshot(taken_at=now or utc_now(), filter=flt)
    try:
        snap.stats = ops.stats()
    except JqError as exc:  # stats reads Postgres first: nothing else can work without it
        snap.database_error = exc.message
        return snap
    try:
        snap.rates = ops.rates(rate_seconds)
    except JqError as exc:
        if is_database_error(exc):
            snap.database_error = exc.message
            return snap
        snap.rates_error = exc.message
    try:
        snap.jobs = _jobs(ops, flt, jobs_limit)
    except JqError as exc:
        if is_database_error(exc):
            snap.database_error = exc.message
            return snap
        snap.jobs_error = exc.message
    try:
        snap.dead = ops.dead_letters(limit=dead_limit)
    except JqError as exc:
        if is_database_error(exc):
            snap.database_error = exc.message
            return snap
        snap.dead_error = exc.message
    return snap


def _jobs(ops: DashboardOps, flt: Filter, limit: int) -> list[dict[str, Any]]:
    if flt.job_id is not None:
        try:
            job = ops.get(flt.job_id)
        except NotFound:
            return []
        rest = flt.without_id()
        keep = all(
            getattr(rest, f) in (None, job.get(c))
            for f, c in (
                ("state", "state"),
                ("job_type", "job_type"),
                ("priority", "priority"),
                ("queue", "queue"),
            )
        )
        return [job] if keep else []
    return ops.list_jobs(
        state=flt.state, job_type=flt.job_type, priority=flt.priority, queue=flt.queue, limit=limit
    )
