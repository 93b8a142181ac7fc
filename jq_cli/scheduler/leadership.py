"""Leadership among schedulers: a lease row in PostgreSQL's time, renewed on every pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from jq_cli.store import Store

log = logging.getLogger("jq.scheduler")


class Leadership:
    """This scheduler's claim to lead (store.leader_acquire): the leader renews the lease on every
    pass and stops leading as soon as it cannot show a live lease; a standby takes it once it has
    expired. No session state is involved, so a half-open connection, a blackholed route or a
    connection pooler cannot keep a dead leader in place (docs/design.md, Daemons and Invariants 5).

    `clock` is monotonic seconds; the lease is counted on it from before the statement was sent,
    so this scheduler's idea of the lease always ends before the database's."""

    def __init__(
        self,
        store: Store,
        name: str,
        lease: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.name = name
        self.lease = lease  # seconds asked for at each renewal
        self.clock = clock
        self.leader = False
        self.lease_until = 0.0  # clock time until which the lease surely holds

    def campaign(self) -> bool:
        """Take or renew the lease. Returns whether this scheduler leads. Raises what the store
        raises (the caller then calls drop())."""
        sent = self.clock()
        left = self.store.leader_acquire(self.name, self.lease)
        if left is None:
            if self.leader:
                log.warning("event=leadership_lost scheduler=%s reason=lease_taken", self.name)
            self.leader = False
            return False
        if not self.leader:
            log.info("event=leadership_acquired scheduler=%s", self.name)
        self.leader = True
        self.lease_until = sent + left
        return True

    def leading(self) -> bool:
        """True while the lease surely holds; checked before each duty, so a leader whose pass
        stalled past its lease stops there instead of working beside the new leader."""
        if self.leader and self.clock() >= self.lease_until:
            self.leader = False
            log.warning("event=leadership_lost scheduler=%s reason=lease_expired", self.name)
        return self.leader

    def drop(self) -> None:
        """Stop leading without a word to the database: it is away, and the lease may run out
        while it is, so lead again only after a renewal."""
        self.leader = False

    def release(self) -> None:
        """Give the lease up at a clean stop, so a standby leads at its next pass."""
        if self.leader:
            self.store.leader_release(self.name)
            self.leader = False
