"""The sweep duty: queued jobs whose message went missing are published again."""

from __future__ import annotations

import logging
from typing import Any

from jq_cli.broker import Publisher
from jq_cli.scheduler.census import WorkerCensus
from jq_cli.scheduler.publish import publish_queued
from jq_cli.store import Store

log = logging.getLogger("jq.scheduler")
REPUBLISH_LIMIT = 5000  # messages re-published per queue per sweep


def held_by_workers(workers: list[dict[str, Any]], default_prefetch: int) -> dict[str, int]:
    """Per queue, how many deliveries live workers may hold unacknowledged: a worker with a free
    slot claims what it receives at once, a busy one holds up to its prefetch (as its heartbeat
    reports it, else `default_prefetch`, else its concurrency)."""
    held: dict[str, int] = {}
    for info in workers:
        concurrency = int(info.get("concurrency") or 0)
        if int(info.get("running") or 0) < concurrency:
            continue
        prefetch = int(info.get("prefetch") or default_prefetch or concurrency)
        for queue in info.get("queues") or []:
            held[queue] = held.get(queue, 0) + prefetch
    return held


class Sweeper:
    """Per queue, the messages that exist are the broker's ready count plus what workers hold
    unacknowledged; queued jobs beyond those are missing, and that many of the jobs published
    longest ago (beyond `republish_after` seconds) are published again. Every count comes from
    the job_counts summary and the broker, and the pick (job_republish_claim) walks an index up to
    REPUBLISH_LIMIT, so a pass costs the same with a thousand queued jobs or a million
    (docs/design.md, Daemons). A duplicate message it may still create is harmless: the claim is
    conditional (docs/design.md, Invariant 2)."""

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        census: WorkerCensus,
        republish_after: float,
        default_prefetch: int = 0,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.census = census
        self.republish_after = republish_after
        self.default_prefetch = default_prefetch

    def run_once(self) -> int:
        """Re-publish the missing messages. Returns how many were published. Raises
        BrokerUnavailable when the broker cannot be asked for its counts."""
        queued: dict[str, int] = {}
        for row in self.store.job_counts()["queued"]:
            queued[row["queue"]] = queued.get(row["queue"], 0) + row["n"]
        # A paused queue's jobs wait without messages; resuming publishes them.
        for queue in self.store.queue_paused() if queued else ():
            queued.pop(queue, None)
        if not queued:
            return 0
        depths = self.publisher.queue_depths(sorted(queued))
        # Without Redis the sweep counts ready messages only, and may publish duplicates.
        held = held_by_workers(self.census.workers() or [], self.default_prefetch)
        total = 0
        for queue, waiting in sorted(queued.items()):
            ready = depths.get(queue) or 0
            missing = waiting - ready - held.get(queue, 0)
            if missing <= 0:
                continue
            rows = self.store.job_republish_claim(
                queue, self.republish_after, min(missing, REPUBLISH_LIMIT)
            )
            if not rows:
                continue  # the difference is jobs published just now, not lost ones
            total += publish_queued(self.publisher, rows)
            log.warning(
                "event=messages_republished queue=%s count=%d queued=%d broker_ready=%d held=%d",
                queue,
                len(rows),
                waiting,
                ready,
                held.get(queue, 0),
            )
        return total
