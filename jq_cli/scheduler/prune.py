"""The prune duty: terminal jobs, and audit rows, older than their retention are deleted."""

from __future__ import annotations

import logging

from jq_cli.config import Settings
from jq_cli.store import Store

log = logging.getLogger("jq.scheduler")
PRUNE_BATCH = 1000  # jobs deleted per statement: each batch is its own short transaction
PRUNE_BATCHES = 10  # per state per pass; a longer backlog goes on at the next pass


class Pruner:
    """Asks the store to delete old jobs per terminal state (job_prune), PRUNE_BATCH rows per
    statement and at most PRUNE_BATCHES statements per state, so a large backlog is worked off
    over several passes without starving the other duties; then old audit rows (audit_prune).
    A retention of 0 keeps that kind forever."""

    def __init__(self, store: Store, retention: dict[str, float], audit_retention: float) -> None:
        self.store = store
        self.retention = retention  # seconds, by terminal state
        self.audit_retention = audit_retention

    @classmethod
    def from_settings(cls, store: Store, settings: Settings) -> Pruner:
        """The retentions of JQ_RETENTION_* and JQ_AUDIT_RETENTION."""
        retention = {
            "completed": settings.retention_completed,
            "dead": settings.retention_dead,
            "cancelled": settings.retention_cancelled,
        }
        return cls(store, retention, settings.audit_retention)

    def run_once(self) -> dict[str, int]:
        """One bounded prune. Returns the count deleted per state (and "audit"), leaving out
        the kinds of which nothing was deleted."""
        counts: dict[str, int] = {}
        for state, age in self.retention.items():
            if age <= 0:
                continue
            deleted = 0
            for _ in range(PRUNE_BATCHES):
                n = self.store.job_prune(state, age, PRUNE_BATCH)
                deleted += n
                if n < PRUNE_BATCH:
                    break
            if deleted:
                counts[state] = deleted
                log.info("event=jobs_pruned state=%s count=%d older_than=%ss", state, deleted, age)
        if self.audit_retention > 0:
            audited = self.store.audit_prune(self.audit_retention, PRUNE_BATCH)
            if audited:
                counts["audit"] = audited
                log.info(
                    "event=audit_pruned count=%d older_than=%ss", audited, self.audit_retention
                )
        return counts


def backlog_left(pruned: dict[str, int]) -> bool:
    """True when a state filled all its batches: more is waiting, so the next prune should come
    at the next pass rather than after the usual pause."""
    return any(n >= PRUNE_BATCH * PRUNE_BATCHES for n in pruned.values())
