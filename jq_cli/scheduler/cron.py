"""The cron duty: fire the schedules whose next tick has come."""

from __future__ import annotations

import logging
from datetime import datetime

from jq_cli.broker import Publisher
from jq_cli.model import cron
from jq_cli.scheduler.publish import publish_queued
from jq_cli.store import DueSchedule, Store

log = logging.getLogger("jq.scheduler")
CRON_BATCH = 100  # schedules fired per transaction


class CronFirer:
    """Asks the store to fire due schedules (schedule_fire_due) with this duty's plan for each,
    CRON_BATCH per transaction until a short batch, and publishes the jobs made. One job per tick,
    by the unique key on schedule and fire time (docs/design.md, Invariant 5)."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        misfire_grace: float,
        default_max_retries: int,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.misfire_grace = misfire_grace
        self.default_max_retries = default_max_retries

    def plan(self, row: DueSchedule, now: datetime) -> cron.FirePlan | None:
        """The fire plan of a due schedule; None (and a log line) when it cannot be computed, so
        one broken schedule never stops the others."""
        try:
            plan = cron.plan(
                row["cron"],
                row["timezone"],
                row["next_fire_at"],
                now,
                row["misfire"],
                self.misfire_grace,
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

    def run_once(self) -> int:
        """Fire every due tick, advance the timers, publish. Returns the jobs created."""
        total = 0
        while True:
            jobs, planned = self.store.schedule_fire_due(
                CRON_BATCH, self.plan, self.default_max_retries
            )
            for job in jobs:
                log.info(
                    "event=schedule_fired schedule=%s fire_time=%s job=%d",
                    job["schedule_name"],
                    job["fire_time"].isoformat(),
                    job["id"],
                )
            publish_queued(self.publisher, jobs)
            total += len(jobs)
            if len(planned) < CRON_BATCH:
                return total
