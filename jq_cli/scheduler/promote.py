"""The promote duty: scheduled and retrying jobs whose run_at has come become queued, and go out."""

from __future__ import annotations

from jq_cli.broker import Publisher
from jq_cli.scheduler.publish import publish_queued
from jq_cli.store import Store

BATCH = 1000  # rows per statement: a large backlog never holds locks for long


class Promoter:
    """Asks the store for due jobs (job_promote_due) in batches until a short one, and publishes
    them. Time is the rows' run_at against the database's clock (docs/design.md, Invariant 4)."""

    def __init__(self, store: Store, publisher: Publisher) -> None:
        self.store = store
        self.publisher = publisher

    def run_once(self) -> int:
        """Promote and publish every job now due. Returns how many were promoted."""
        total = 0
        while True:
            rows = self.store.job_promote_due(BATCH)
            publish_queued(self.publisher, rows)
            total += len(rows)
            if len(rows) < BATCH:
                return total
