"""The rescue duty: running jobs whose lease expired (their worker died or was cut off)."""

from __future__ import annotations

import logging

from jq_cli.broker import Publisher
from jq_cli.scheduler.publish import publish_queued
from jq_cli.store import Store

log = logging.getLogger("jq.scheduler")
BATCH = 1000  # rows per statement: a large backlog never holds locks for long


class Rescuer:
    """Asks the store to take back expired leases (job_rescue_expired) in batches until a short
    one, and publishes the jobs that went back to queued; the others went dead (attempts spent)
    or cancelled (a cancel was waiting for them)."""

    def __init__(self, store: Store, publisher: Publisher) -> None:
        self.store = store
        self.publisher = publisher

    def run_once(self) -> dict[str, int]:
        """Rescue every expired lease. Returns counts by the state the jobs went to."""
        counts: dict[str, int] = {}
        while True:
            rows = self.store.job_rescue_expired(BATCH)
            for row in rows:
                counts[row["state"]] = counts.get(row["state"], 0) + 1
            if rows:
                log.warning(
                    "event=jobs_rescued count=%d ids=%s", len(rows), [r["id"] for r in rows][:20]
                )
            publish_queued(self.publisher, rows)
            if len(rows) < BATCH:
                return counts
