"""The operations every front end calls (CLI, `jq top`, the HTTP shim, the Python API).

Front ends never touch SQL, AMQP or Redis: they call an Operations object, which validates
input before anything is written, commits to Postgres first, then publishes to RabbitMQ.
`jq_cli.Client` is this class.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jq_cli.config import Settings, load_settings, mask_url
from jq_cli.errors import InvalidInput, InvalidTransition, JqError, NotFound, ServiceUnavailable
from jq_cli.handlers.registry import Registry, load_builtins
from jq_cli.jobspec import (
    JobRequest,
    check_name,
    check_payload,
    encode_payload,
    parse_priority,
    payload_checker,
)
from jq_cli.schedule_ops import ScheduleOperations
from jq_cli.states import PRIORITY_NAMES, TERMINAL_STATES, JobState, Priority
from jq_cli.store import Inserted, Store, latest_version

log = logging.getLogger("jq.ops")
SCHEMA_TTL = 30.0  # seconds a payload schema read from PostgreSQL is trusted before re-reading
PURGEABLE = ("completed", "dead", "cancelled")
PURGE_BATCH = 5000


@dataclass
class ActionReport:
    """What a multi-id action did: the ids it changed and, per id, why others were refused."""

    changed: dict[int, str] = field(default_factory=dict)
    refused: dict[int, JqError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": [{"id": i, "state": s} for i, s in self.changed.items()],
            "refused": [
                {"id": i, "error": e.message, "kind": e.kind} for i, e in self.refused.items()
            ],
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


class Operations(ScheduleOperations):
    """One connection to each service, opened on first use and kept for the object's life, so an
    application can submit thousands of jobs a second through one instance. Not thread-safe:
    give each thread its own."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: Registry | None = None,
        **overrides: Any,
    ):
        self.settings = settings or load_settings(**overrides)
        self.registry = registry or load_builtins()
        self._store: Store | None = None
        self._publisher = None
        self._telemetry = None
        self._type_schemas: dict[str, tuple[float, Any, dict[str, Any]]] = {}  # type: (when read, checker)

    # -- services -----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            store = Store(
                self.settings.database_url, self.settings.namespace, application_name="jq-client"
            )
            store.require_schema()
            self._store = store
        return self._store

    @property
    def publisher(self):
        if self._publisher is None:
            from jq_cli.broker import Publisher

            self._publisher = Publisher(self.settings.rabbitmq_url, self.settings.namespace)
        return self._publisher

    @property
    def telemetry(self):
        if self._telemetry is None:
            from jq_cli.telemetry import Telemetry

            self._telemetry = Telemetry(self.settings.redis_url, self.settings.namespace)
        return self._telemetry

    def close(self) -> None:
        for service in (self._store, self._publisher, self._telemetry):
            if service is not None:
                # Closing is best effort; the process may be exiting.
                with contextlib.suppress(Exception):
                    service.close()
        self._store = self._publisher = self._telemetry = None

    def __enter__(self) -> Operations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submit -------------------------------------------------------------------------------

    def _check_type(self, request: JobRequest) -> None:
        handler = self.registry.get(request.job_type)
        if handler is not None:
            handler.validate(request.payload)
            return
        # A type whose handler only the workers import is known through their registration, with
        # the payload schema (JSON Schema of its pydantic model) they registered for it.
        cached = self._type_schemas.get(request.job_type)
        if cached is None or time.monotonic() - cached[0] > SCHEMA_TTL:
            known, schema, defaults = self.store.job_type_info(request.job_type)
            if known:
                cached = (time.monotonic(), payload_checker(schema), defaults)
                self._type_schemas[request.job_type] = cached
        if cached is not None:
            check_payload(request.job_type, request.payload, cached[1])
            return
        known = ", ".join(self.registry.names())
        raise InvalidInput(
            f"unknown job type {request.job_type!r} (built in: {known}; others must be registered by a "
            "running `jq worker --import MODULE`)"
        )

    def _prepare(self, request: JobRequest):
        self._check_type(request)
        handler = self.registry.get(request.job_type)
        if handler is not None:
            request = request.with_defaults(handler.defaults.as_dict())
        elif request.job_type in self._type_schemas:  # the defaults its workers registered
            request = request.with_defaults(self._type_schemas[request.job_type][2])
        text = encode_payload(request.payload, self.settings.max_payload_bytes)
        return request.to_new_job(text, self.settings.default_max_retries)

    def _publish(self, inserted: Sequence[Inserted]) -> None:
        from jq_cli.broker import Message

        due = [
            Message(i.id, i.queue, i.priority)
            for i in inserted
            if i.created and i.state == JobState.QUEUED
        ]
        if not due:
            return
        try:
            self.publisher.publish(due)
        except (ServiceUnavailable, InvalidInput) as exc:
            # The jobs are committed: the scheduler's sweeper publishes them once the broker is back.
            # Raising here (even for a malformed JQ_RABBITMQ_URL) would report an accepted job as
            # failed and invite a duplicate submit.
            log.warning(
                "publish deferred for %d job(s), the scheduler will publish them: %s",
                len(due),
                exc.message,
            )

    def submit(
        self,
        job_type: str,
        payload: dict | None = None,
        *,
        priority: str | Priority | None = None,
        max_retries: int | None = None,
        queue: str | None = None,
        delay: float | str | None = None,
        run_at: datetime | str | None = None,
        idempotency_key: str | None = None,
        time_limit: float | str | None = None,
        **retry: float,
    ) -> int:
        """Submit one job; returns its id once the row is committed. Raises InvalidInput,
        ServiceUnavailable, SchemaNotMigrated."""
        fields = {
            "priority": priority.value if isinstance(priority, Priority) else priority,
            "max_retries": max_retries,
            "queue": queue,
            "delay": delay,
            "run_at": run_at,
            "idempotency_key": idempotency_key,
            "time_limit": time_limit,
            **retry,
        }
        # Only what the caller gave: the rest falls to the handler's @job defaults, then jq's.
        given = {k: v for k, v in fields.items() if v is not None}
        request = JobRequest.parse(
            {"job_type": job_type, "payload": {} if payload is None else payload, **given}
        )
        return self.submit_request(request).id

    def submit_request(self, request: JobRequest) -> Inserted:
        """Submit a validated JobRequest; returns what was inserted (or found by its key)."""
        new = self._prepare(request)
        inserted = self.store.job_insert(new)
        self._publish([inserted])
        return inserted

    def submit_many(self, jobs: Iterable[dict | JobRequest]) -> list[int]:
        """Submit many jobs in one transaction: all or none. Returns their ids in order."""
        return [i.id for i in self.submit_many_detailed(jobs)]

    def submit_many_detailed(
        self,
        jobs: Iterable[dict | JobRequest],
        *,
        where: str = "job",
        numbers: Sequence[int] | None = None,
    ) -> list[Inserted]:
        """`numbers` label each job in error messages (e.g. its line in a file with blank lines
        skipped); by default jobs are numbered from 1."""
        jobs = list(jobs)
        labels = list(numbers) if numbers is not None else list(range(1, len(jobs) + 1))
        if len(labels) != len(jobs):
            raise ValueError("numbers must label every job")
        requests = [
            j if isinstance(j, JobRequest) else JobRequest.parse(j, f"{where} {n}")
            for n, j in zip(labels, jobs, strict=False)
        ]
        prepared = []
        for n, request in zip(labels, requests, strict=False):
            try:
                prepared.append(self._prepare(request))
            except InvalidInput as exc:
                raise InvalidInput(f"{where} {n}: {exc.message}") from None
        inserted = self.store.job_insert_many(prepared)
        self._publish(inserted)
        return inserted

    # -- read ---------------------------------------------------------------------------------

    def get(self, job_id: int) -> dict[str, Any]:
        """The job with every attempt. Raises NotFound."""
        return _present(self.store.job_get(job_id))

    def list_jobs(
        self,
        *,
        state: str | None = None,
        job_type: str | None = None,
        priority: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Jobs newest first; `before_id` continues a listing after the last id it showed (a stable
        page even while jobs are submitted, unlike an offset). Raises InvalidInput for a bad filter."""
        states = [_parse_state(state)] if state else None
        if job_type:
            check_name(job_type, "job type")
        if queue:
            check_name(queue, "queue")
        if not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be between 1 and 10000, got {limit}")
        if before_id is not None and before_id < 1:
            raise InvalidInput(f"before must be a job id (1 or more), got {before_id}")
        prio = parse_priority(priority).amqp if priority else None
        rows = self.store.job_list(
            states=states,
            job_type=job_type,
            priority=prio,
            queue=queue,
            since_seconds=since,
            limit=limit,
            before_id=before_id,
        )
        return [_present(r) for r in rows]

    def wait(self, job_id: int, timeout: float | None = None, poll: float = 0.1) -> dict[str, Any]:
        """Block until the job is terminal (or `timeout` seconds pass); returns the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            states = self.store.job_states([job_id])
            if job_id not in states:
                raise NotFound(f"job {job_id} not found")
            if JobState(states[job_id]) in TERMINAL_STATES:
                return self.get(job_id)
            if deadline is not None and time.monotonic() >= deadline:
                return self.get(job_id)
            time.sleep(poll)

    # -- operator actions ---------------------------------------------------------------------

    def _refusals(
        self, ids: Sequence[int], changed: Iterable[int], verb: str, allowed: str
    ) -> dict[int, JqError]:
        rest = [i for i in ids if i not in set(changed)]
        if not rest:
            return {}
        states = self.store.job_states(rest)
        refused: dict[int, JqError] = {}
        for job_id in rest:
            if job_id not in states:
                refused[job_id] = NotFound(f"job {job_id} not found")
            else:
                refused[job_id] = InvalidTransition(
                    f"job {job_id} is {states[job_id]}: only {allowed} jobs can be {verb}"
                )
        return refused

    def retry(self, ids: Sequence[int]) -> ActionReport:
        """Dead (or cancelled) jobs back to queued with a fresh set of attempts; history kept."""
        rows = self.store.job_retry(list(ids))
        self._publish_rows(rows)
        report = ActionReport(changed={r["id"]: "queued" for r in rows})
        report.refused = self._refusals(ids, report.changed, "retried", "dead or cancelled")
        return report

    def retry_matching(
        self,
        *,
        state: str = "dead",
        job_type: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        """Retry every job in `state` (dead or cancelled), optionally of one type. Returns the ids."""
        parsed = _parse_state(state)
        if parsed not in (JobState.DEAD, JobState.CANCELLED):
            raise InvalidInput(f"only dead or cancelled jobs can be retried, not {state}")
        if job_type:
            check_name(job_type, "job type")
        ids = self.store.job_ids_matching(parsed.value, job_type, limit)
        if dry_run or not ids:
            return ids
        done: list[int] = []
        for start in range(0, len(ids), PURGE_BATCH):
            done.extend(self.retry(ids[start : start + PURGE_BATCH]).changed)
        return done

    def _publish_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        due = [
            Inserted(r["id"], "queued", r["queue"], r["priority"], True)
            for r in rows
            if r.get("state", "queued") == "queued"
        ]
        self._publish(due)

    def cancel(self, ids: Sequence[int]) -> ActionReport:
        """Cancel jobs: one not started ends cancelled and never runs; a running one is asked to stop
        (its handler sees ctx.cancelled) and ends cancelled, never retried."""
        changed = self.store.job_cancel(list(ids))
        report = ActionReport(
            changed={i: ("cancelling" if s == "running" else s) for i, s in changed.items()}
        )
        refused = self._refusals(
            ids, changed, "cancelled", "scheduled, queued, retrying or running"
        )
        for job_id, err in list(refused.items()):
            if isinstance(err, InvalidTransition) and "is running" in err.message:
                report.changed[job_id] = (
                    "cancelling"  # asked already: cancelling twice is not an error
                )
                del refused[job_id]
        report.refused = refused
        return report

    def purge(
        self,
        *,
        state: str,
        older_than: float | None = None,
        job_type: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Delete terminal jobs (with their attempts) in `state`; never an active one. Returns how many
        were (or, with dry_run, would be) deleted."""
        state = state.lower()
        if state not in PURGEABLE:
            raise InvalidInput(
                f"purge takes a terminal state ({', '.join(PURGEABLE)}), not {state!r}"
            )
        if job_type:
            check_name(job_type, "job type")
        ids = self.store.job_ids_matching(state, job_type, older_than=older_than)
        if dry_run:
            return len(ids)
        deleted = 0
        for start in range(0, len(ids), PURGE_BATCH):
            deleted += self.store.job_purge(ids[start : start + PURGE_BATCH])
        return deleted

    def dead_letters(
        self, *, job_type: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        return self.list_jobs(state="dead", job_type=job_type, limit=limit, before_id=before_id)

    # -- health -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts by state, queued by priority and queue (Postgres beside the broker's own depth),
        and the live workers (None with an error when Redis is unavailable)."""
        counts = self.store.job_counts()
        by_state = {s.value: counts["by_state"].get(s.value, 0) for s in JobState}
        by_priority = {p.value: 0 for p in Priority}
        by_queue: dict[str, dict[str, Any]] = {}
        for row in counts["queued"]:
            by_priority[PRIORITY_NAMES[row["priority"]]] += row["n"]
            by_queue.setdefault(row["queue"], {"queued": 0, "broker_ready": None})["queued"] += row[
                "n"
            ]
        by_queue.setdefault("default", {"queued": 0, "broker_ready": None})
        broker_error = None
        try:
            for queue, depth in self.publisher.queue_depths(sorted(by_queue)).items():
                by_queue[queue]["broker_ready"] = depth
        except (ServiceUnavailable, InvalidInput) as exc:  # Postgres' counts still stand
            broker_error = exc.message
        workers, telemetry_error = None, None
        try:
            workers = self.telemetry.workers()
        except (ServiceUnavailable, InvalidInput) as exc:
            telemetry_error = exc.message
        return {
            "by_state": by_state,
            "queued_by_priority": by_priority,
            "queues": by_queue,
            "workers": workers,
            "broker_error": broker_error,
            "telemetry_error": telemetry_error,
        }

    def rates(self, seconds: int = 120) -> dict[str, list[int | None]]:
        """Per-second counts of submitted, completed and failed jobs over the last `seconds` whole
        seconds, oldest first. Submitted comes from Postgres (the submit path pays no Redis round
        trip; None marks a second too busy to count cheaply), completed and failed from the
        workers' counters in Redis. Raises ServiceUnavailable."""
        series = self.telemetry.rates(["completed", "failed"], seconds)
        return {"submitted": _submitted_per_second(self.store, seconds), **series}

    def doctor(self) -> list[Check]:
        """Check each service and the schema; never raises."""
        s = self.settings
        checks: list[Check] = []
        store = Store(s.database_url, s.namespace, application_name="jq-doctor")
        try:
            version = store.schema_version()
            checks.append(Check("postgresql", True, f"reachable at {mask_url(s.database_url)}"))
            want = latest_version()
            checks.append(
                Check(
                    "schema",
                    version >= want,
                    f"version {version} of {want}",
                    "" if version >= want else "run `jq db migrate`",
                )
            )
        except JqError as exc:
            checks.append(
                Check(
                    "postgresql",
                    False,
                    exc.message,
                    "start PostgreSQL or set JQ_DATABASE_URL"
                    if isinstance(exc, ServiceUnavailable)
                    else "run `jq db migrate`",
                )
            )
        finally:
            store.close()
        try:
            self.publisher.ping()
            checks.append(Check("rabbitmq", True, f"reachable at {mask_url(s.rabbitmq_url)}"))
        except ServiceUnavailable as exc:
            checks.append(
                Check("rabbitmq", False, exc.message, "start RabbitMQ or set JQ_RABBITMQ_URL")
            )
        except InvalidInput as exc:
            checks.append(Check("rabbitmq", False, exc.message, "fix JQ_RABBITMQ_URL"))
        try:
            self.telemetry.ping()
            checks.append(Check("redis", True, f"reachable at {mask_url(s.redis_url)}"))
        except ServiceUnavailable as exc:
            checks.append(
                Check(
                    "redis",
                    False,
                    exc.message,
                    "start Redis or set JQ_REDIS_URL (jobs still run without it)",
                )
            )
        except InvalidInput as exc:
            checks.append(Check("redis", False, exc.message, "fix JQ_REDIS_URL"))
        return checks

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> tuple[bool, list[str], int]:
        """Create the database if missing and apply pending migrations.
        Returns (database created, migrations applied, version now)."""
        store = Store(
            self.settings.database_url, self.settings.namespace, application_name="jq-migrate"
        )
        try:
            created = store.ensure_database()
            applied = store.migrate()
            return created, applied, store.schema_version()
        finally:
            store.close()

    def schema_status(self) -> tuple[int, int]:
        """(applied version, latest version this code ships)."""
        store = Store(
            self.settings.database_url, self.settings.namespace, application_name="jq-status"
        )
        try:
            return store.schema_version(), latest_version()
        finally:
            store.close()


def _parse_state(value: str) -> JobState:
    try:
        return JobState(value.lower())
    except ValueError:
        raise InvalidInput(
            f"unknown state {value!r} (one of: {', '.join(s.value for s in JobState)})"
        ) from None


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """A job row as front ends show it: priority by name."""
    if "priority" in row and isinstance(row["priority"], int):
        row["priority"] = PRIORITY_NAMES.get(row["priority"], str(row["priority"]))
    return row


# -- dashboard (jq top) -------------------------------------------------------------------------


def _submitted_per_second(store: Store, seconds: int) -> list[int | None]:
    """Jobs created in each of the last `seconds` whole seconds, oldest first, on the same clock
    and window as the Redis counters (jq_cli.telemetry.Telemetry.rates)."""
    from jq_cli.store import job_count_created_per_second

    last = int(time.time()) - 1
    first = last - seconds + 1
    counts, covered_from = job_count_created_per_second(store, first, last)
    return [None if s < covered_from else counts.get(s, 0) for s in range(first, last + 1)]
