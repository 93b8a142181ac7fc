"""How the scheduler's duties hand the jobs they made ready to the broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jq_cli.broker import Message, Publisher
from jq_cli.errors import ServiceUnavailable
from jq_cli.store import FiredJob, JobRef

log = logging.getLogger("jq.scheduler")


def publish_queued(publisher: Publisher, rows: Sequence[JobRef | FiredJob]) -> int:
    """Publish the rows that are queued (a rescued job may have gone dead or cancelled instead).
    Returns how many were published; 0, and a log line, when the broker is away: the jobs stay
    queued in PostgreSQL and the sweeper publishes them once it is back (docs/design.md, Roles of
    the three services)."""
    due = [
        Message(r["id"], r["queue"], r["priority"])
        for r in rows
        if r.get("state", "queued") == "queued"
    ]
    if not due:
        return 0
    try:
        return publisher.publish(due)
    except ServiceUnavailable as exc:
        log.warning("event=publish_deferred jobs=%d reason=%r", len(due), exc.message)
        return 0
