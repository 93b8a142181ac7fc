"""The base of jq_cli.client.Client: the connections it holds (one Store, one Publisher, one
Telemetry, opened on first use) and what every group of operations shares (the rules of a job
type and the one preparation of a job from ops/prepare.py, publishing what was committed,
presenting a row). The groups are mixins on this base, in jq_cli/ops/."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self, cast

from jq_cli.config import Settings, load_settings
from jq_cli.errors import InvalidInput, ServiceUnavailable, did_you_mean
from jq_cli.model.audit import Actor
from jq_cli.model.states import PRIORITY_NAMES, JobState
from jq_cli.ops.prepare import JobTypes, TypeRules, prepare
from jq_cli.store import Inserted, JobRef, JobRow, JobSummary, NewJob, Store

if TYPE_CHECKING:
    from jq_cli.broker import Publisher
    from jq_cli.handlers.registry import Registry
    from jq_cli.model.jobspec import JobRequest
    from jq_cli.observe.telemetry import Telemetry

log = logging.getLogger("jq.ops")


class OperationsCore:
    """One connection to each service, opened on first use and kept for the object's life, so an
    application can submit thousands of jobs a second through one instance. Not thread-safe:
    give each thread its own."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        registry: Registry | None = None,
        actor: Actor | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or load_settings(**overrides)
        # Who the operator actions are recorded as (the audit log). Each front end passes its
        # own; a program using jq_cli.Client is recorded as its OS user and host. `jq serve`
        # sets it per request (OpsPool.borrow).
        self.actor = actor or Actor.local("api")
        self._registry = registry
        self._store: Store | None = None
        self._publisher: Publisher | None = None
        self._telemetry: Telemetry | None = None
        self.types = JobTypes(lambda: self.registry)

    @property
    def registry(self) -> Registry:
        """The handlers this process knows (the built-ins and any @job it imported), loaded on
        first use: reading jobs (`jq show`, `jq list`) needs none of their pydantic models."""
        if self._registry is None:
            from jq_cli.handlers.registry import load_builtins

            self._registry = load_builtins()
        return self._registry

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
    def publisher(self) -> Publisher:
        if self._publisher is None:
            # Imported here, so that `jq --help` and commands without RabbitMQ do not load pika.
            from jq_cli.broker import Publisher

            self._publisher = Publisher(self.settings.rabbitmq_url, self.settings.namespace)
        return self._publisher

    @property
    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            from jq_cli.observe.telemetry import Telemetry

            self._telemetry = Telemetry(self.settings.redis_url, self.settings.namespace)
        return self._telemetry

    def close(self) -> None:
        for service in (self._store, self._publisher, self._telemetry):
            if service is not None:
                # Closing is best effort; the process may be exiting.
                with contextlib.suppress(Exception):
                    service.close()
        self._store = None
        self._publisher = None
        self._telemetry = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared by the groups of operations ---------------------------------------------------

    def _rules(self, job_type: str) -> TypeRules:
        """The rules of `job_type` (ops/prepare.py): its imported handler's, else those its workers
        registered in PostgreSQL. Raises InvalidInput for an unknown type."""
        rules = self.types.cached(job_type)
        if rules is None:
            rules = self.types.learn(job_type, self.store.job_type_info(job_type))
        if rules is None:
            raise self.types.unknown(job_type, self.store.job_type_names())
        return rules

    def _prepare(self, request: JobRequest) -> NewJob:
        """The job ready to insert, by the one preparation every front door shares
        (ops/prepare.py). Raises InvalidInput."""
        return prepare(request, self._rules(request.job_type), self.settings)

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

    def _publish_rows(self, rows: Sequence[JobRef]) -> None:
        due = [
            Inserted(r["id"], "queued", r["queue"], r["priority"], True)
            for r in rows
            if r.get("state", "queued") == "queued"
        ]
        self._publish(due)


def parse_state(value: str) -> JobState:
    """A job state from user input. Raises InvalidInput."""
    try:
        return JobState(value.lower())
    except ValueError:
        names = [s.value for s in JobState]
        raise InvalidInput(
            f"unknown state {value!r}{did_you_mean(value.lower(), names)} (one of: {', '.join(names)})"
        ) from None


def present_job(row: JobRow | JobSummary) -> dict[str, Any]:
    """A job row as front ends show it: priority by name (the row itself is changed)."""
    out = cast(dict[str, Any], row)
    if "priority" in out and isinstance(out["priority"], int):
        out["priority"] = PRIORITY_NAMES.get(out["priority"], str(out["priority"]))
    return out
