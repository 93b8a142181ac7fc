"""The health operations of jq_cli.client.Client: counts and rates for `jq stats` and
`jq top`, `jq doctor`'s checks, and the schema (`jq db migrate`, `jq db status`). A mixin, so
front ends still call one object."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jq_cli.errors import InvalidInput, JqError, ServiceUnavailable
from jq_cli.model.states import PRIORITY_NAMES, JobState, Priority
from jq_cli.ops.core import OperationsCore
from jq_cli.redaction import mask_url
from jq_cli.store import Store, latest_version


@dataclass
class Check:
    """One line of `jq doctor`: a service or the schema, whether it is fine, and what to do."""

    name: str
    ok: bool
    detail: str
    hint: str = ""


class HealthOperations(OperationsCore):
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
        # A paused queue is listed, and marked, even with nothing queued.
        paused = self.store.queue_paused()
        for queue in paused:
            by_queue.setdefault(queue, {"queued": 0, "broker_ready": None})
        for queue, entry in by_queue.items():
            entry["paused"] = queue in paused
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
            "limited": self.store.job_count_limited(),  # held back by a limit
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
        out: dict[str, list[int | None]] = {"submitted": _submitted_per_second(self.store, seconds)}
        out.update({event: list(counts) for event, counts in series.items()})
        return out

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


# -- dashboard (jq top) -------------------------------------------------------------------------


def _submitted_per_second(store: Store, seconds: int) -> list[int | None]:
    """Jobs created in each of the last `seconds` whole seconds, oldest first, on the same clock
    and window as the Redis counters (jq_cli.observe.telemetry.Telemetry.rates)."""
    from jq_cli.store import job_count_created_per_second

    last = int(time.time()) - 1
    first = last - seconds + 1
    counts, covered_from = job_count_created_per_second(store, first, last)
    return [None if s < covered_from else counts.get(s, 0) for s in range(first, last + 1)]
