"""The scheduler's duties that put jobs on the broker: promote, rescue, sweep and fire cron."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jq_cli.broker import Message, Publisher
from jq_cli.config import Settings
from jq_cli.errors import ServiceUnavailable, TelemetryUnavailable
from jq_cli.model import cron
from jq_cli.store import DueSchedule, FiredJob, JobRef, Store

if TYPE_CHECKING:
    from jq_cli.observe.telemetry import Telemetry

log = logging.getLogger("jq.scheduler")  # the scheduler's logger: these are its duties
BATCH = 1000  # rows per statement: a large backlog never holds locks for long
REPUBLISH_LIMIT = 5000  # messages re-published per queue per sweep
CRON_BATCH = 100  # schedules fired per transaction


class Duties:
    """Mixed into the Scheduler, which owns the connections and settings these steps use; a
    mixin rather than a service of its own so that a SIGHUP's new settings reach them at once."""

    settings: Settings
    store: Store
    publisher: Publisher
    _telemetry: Telemetry | None

    def _publish(self, rows: Sequence[JobRef | FiredJob]) -> int:
        due = [
            Message(r["id"], r["queue"], r["priority"])
            for r in rows
            if r.get("state", "queued") == "queued"
        ]
        if not due:
            return 0
        try:
            return self.publisher.publish(due)
        except ServiceUnavailable as exc:
            # They stay queued in Postgres; the sweeper publishes them once the broker is back.
            log.warning("event=publish_deferred jobs=%d reason=%r", len(due), exc.message)
            return 0

    def run_promote(self) -> int:
        """Publish scheduled and retrying jobs whose run_at has come. Returns how many."""
        total = 0
        while True:
            rows = self.store.job_promote_due(BATCH)
            self._publish(rows)
            total += len(rows)
            if len(rows) < BATCH:
                return total

    def run_rescue(self) -> dict[str, int]:
        """Take back running jobs whose lease expired. Returns counts by the state they went to."""
        counts: dict[str, int] = {}
        while True:
            rows = self.store.job_rescue_expired(BATCH)
            for row in rows:
                counts[row["state"]] = counts.get(row["state"], 0) + 1
            if rows:
                log.warning(
                    "event=jobs_rescued count=%d ids=%s", len(rows), [r["id"] for r in rows][:20]
                )
            self._publish(rows)
            if len(rows) < BATCH:
                return counts

    def run_sweep(self) -> int:
        """Re-publish queued jobs whose message is missing. Per queue, the messages that exist are
        the broker's ready count plus what workers hold unacknowledged (a busy worker holds up to
        its prefetch); queued jobs beyond those are missing, and that many of the jobs published
        longest ago (beyond JQ_REPUBLISH_AFTER) are published again. Every count comes from the
        job_counts summary and the broker, and the pick walks an index up to REPUBLISH_LIMIT, so a
        pass costs the same with a thousand queued jobs or a million. A duplicate message this may
        still create is harmless: the claim is conditional."""
        age = self.settings.republish_after
        queued: dict[str, int] = {}
        for row in self.store.job_counts()["queued"]:
            queued[row["queue"]] = queued.get(row["queue"], 0) + row["n"]
        # A paused queue's jobs wait without messages (issue 16); resuming publishes them.
        for queue in self.store.queue_paused() if queued else ():
            queued.pop(queue, None)
        if not queued:
            return 0
        depths = self.publisher.queue_depths(sorted(queued))
        held = self._held_by_workers()
        total = 0
        for queue, waiting in sorted(queued.items()):
            ready = depths.get(queue) or 0
            missing = waiting - ready - held.get(queue, 0)
            if missing <= 0:
                continue
            rows = self.store.job_republish_claim(queue, age, min(missing, REPUBLISH_LIMIT))
            if not rows:
                continue  # the difference is jobs published just now, not lost ones
            total += self._publish(rows)
            log.warning(
                "event=messages_republished queue=%s count=%d queued=%d broker_ready=%d held=%d",
                queue,
                len(rows),
                waiting,
                ready,
                held.get(queue, 0),
            )
        return total

    def _held_by_workers(self) -> dict[str, int]:
        """Per queue, how many deliveries live workers may hold unacknowledged: a worker with a
        free slot claims what it receives at once, a busy one holds up to its prefetch. Empty when
        Redis is away (the sweep then counts ready messages only, and may publish duplicates)."""
        try:
            if self._telemetry is None:
                from jq_cli.observe.telemetry import Telemetry

                self._telemetry = Telemetry(self.settings.redis_url, self.settings.namespace)
            workers = self._telemetry.workers()
        except TelemetryUnavailable:
            return {}
        held: dict[str, int] = {}
        for info in workers:
            concurrency = int(info.get("concurrency") or 0)
            if int(info.get("running") or 0) < concurrency:
                continue
            prefetch = int(info.get("prefetch") or self.settings.worker_prefetch or concurrency)
            for queue in info.get("queues") or []:
                held[queue] = held.get(queue, 0) + prefetch
        return held

    def _plan(self, row: DueSchedule, now: datetime) -> cron.FirePlan | None:
        """The fire plan of a due schedule; None (and a log line) when it cannot be computed, so one
        broken schedule never stops the others."""
        try:
            plan = cron.plan(
                row["cron"],
                row["timezone"],
                row["next_fire_at"],
                now,
                row["misfire"],
                self.settings.misfire_grace,
            )
        except Exception as exc:  # a zone gone from tzdata, an expression croniter no longer takes
            log.error("event=schedule_broken schedule=%s error=%r", row["name"], str(exc))
            return None
        if plan.missed:
            log.warning(
                "event=schedule_misfire schedule=%s policy=%s missed=%s%s fired=%s next=%s",
                row["name"],
                row["misfire"],
                plan.missed,
                "+" if plan.missed >= cron.COUNT_CAP - 1 else "",
                plan.fire_time.isoformat() if plan.fire_time else "-",
                plan.next_fire_at.isoformat(),
            )
        return plan

    def run_cron(self) -> int:
        """Fire the schedules whose next tick has come (one job per tick, by the unique key on
        schedule and fire time), advance their timers, publish. Returns the jobs created."""
        total = 0
        while True:
            jobs, planned = self.store.schedule_fire_due(
                CRON_BATCH, self._plan, self.settings.default_max_retries
            )
            for job in jobs:
                log.info(
                    "event=schedule_fired schedule=%s fire_time=%s job=%d",
                    job["schedule_name"],
                    job["fire_time"].isoformat(),
                    job["id"],
                )
            self._publish(jobs)
            total += len(jobs)
            if len(planned) < CRON_BATCH:
                return total
