"""The `jq scheduler` daemon, the owner of time: it publishes delayed and retrying jobs when due,
rescues jobs whose worker lost its lease, and re-publishes queued jobs whose message went missing.

Several may run; one leads, through a Postgres advisory lock held by its connection (a leader
that dies frees it at once). Each duty is a run_*() step that returns counts, so it can be tested
on its own; run() is a loop around run_once().
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from jq_cli import sdnotify
from jq_cli.broker import Message, Publisher
from jq_cli.config import Settings, mask_url
from jq_cli.errors import JqError, SchemaNotMigrated, ServiceUnavailable
from jq_cli.store import Store, hostname

log = logging.getLogger("jq.scheduler")
BATCH = 1000  # rows per statement: a large backlog never holds locks for long
REPUBLISH_LIMIT = 5000  # messages re-published per queue per sweep


class Scheduler:
    def __init__(self, settings: Settings, name: str | None = None):
        import os

        self.settings = settings
        self.name = name or f"{hostname()}:{os.getpid()}"
        self.store = Store(settings.database_url, settings.namespace, application_name=f"jq-scheduler {self.name}")
        self.publisher = Publisher(settings.rabbitmq_url, settings.namespace)
        self.leader = False
        self.stopping = threading.Event()
        self._next_sweep = 0.0
        self._down_since: float | None = None

    # -- duties -------------------------------------------------------------------------------

    def _publish(self, rows: list[dict[str, Any]]) -> int:
        due = [Message(r["id"], r["queue"], r["priority"]) for r in rows if r.get("state", "queued") == "queued"]
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
                log.warning("event=jobs_rescued count=%d ids=%s", len(rows), [r["id"] for r in rows][:20])
            self._publish(rows)
            if len(rows) < BATCH:
                return counts

    def run_sweep(self) -> int:
        """Re-publish queued jobs whose message is missing: per queue, those that have waited
        longer than JQ_REPUBLISH_AFTER beyond what the broker still holds. A duplicate message this
        may create is harmless: the claim is conditional."""
        age = self.settings.republish_after
        stale = self.store.job_count_unpublished(age)
        if not stale:
            return 0
        depths = self.publisher.queue_depths(sorted(stale))
        total = 0
        for queue, waiting in stale.items():
            missing = waiting - (depths.get(queue) or 0)
            if missing <= 0:
                continue
            rows = self.store.job_republish_claim(queue, age, min(missing, REPUBLISH_LIMIT))
            total += self._publish(rows)
            log.warning("event=messages_republished queue=%s count=%d broker_ready=%s", queue, len(rows),
                        depths.get(queue))
        return total

    def run_once(self) -> dict[str, Any]:
        """One pass of every duty, if this scheduler leads. Returns what it did."""
        if self.leader and not self.store.has_session():
            # The advisory lock died with the connection that took it; the next query would open a
            # fresh session without it, and this scheduler would work beside the new leader.
            self.leader = False
            log.warning("event=leadership_lost scheduler=%s reason=connection_closed", self.name)
        try:
            if not self.leader:
                self.leader = self.store.leader_try_lock()
                if not self.leader:
                    return {"leader": False}
                log.info("event=leadership_acquired scheduler=%s", self.name)
            report: dict[str, Any] = {"leader": True, "promoted": self.run_promote(), "rescued": self.run_rescue()}
            now = time.monotonic()
            if now >= self._next_sweep:
                try:
                    report["republished"] = self.run_sweep()
                except ServiceUnavailable as exc:
                    if exc.service != "RabbitMQ":
                        raise
                    report["republished"] = 0  # the broker is away: nothing to compare with yet
                self._next_sweep = now + max(1.0, self.settings.republish_after / 3)
            return report
        except JqError:
            # Here and not only in run(): a broken connection took the lock with it, whoever calls us.
            self.leader = False
            raise

    # -- life cycle ---------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def run(self) -> int:
        if self._reachable():
            self.store.require_schema()
        log.info("event=scheduler_started scheduler=%s interval=%ss", self.name, self.settings.scheduler_interval)
        sdnotify.notify("READY=1", "STATUS=waiting for leadership")
        delay = self.settings.scheduler_interval
        while not self.stopping.is_set():
            try:
                was_leader = self.leader
                self.run_once()
                if self.leader and not was_leader:
                    sdnotify.notify("STATUS=leading")
                self._note(None)
                delay = self.settings.scheduler_interval
            except SchemaNotMigrated:
                raise
            except JqError as exc:
                # A broken connection took the advisory lock with it: campaign again after reconnecting.
                self.leader = False
                self._note(exc)
                delay = min(delay * 2, 5.0)
            sdnotify.notify(watchdog=True)
            self.stopping.wait(delay)
        sdnotify.notify("STOPPING=1")
        if self.leader:
            try:
                self.store.leader_unlock()
            except JqError:
                pass
        self.store.close()
        self.publisher.close()
        log.info("event=scheduler_stopped scheduler=%s", self.name)
        return 0

    def _reachable(self) -> bool:
        try:
            self.store.schema_version()
            return True
        except ServiceUnavailable as exc:
            self._note(exc)
            return False

    def _note(self, error: JqError | None) -> None:
        if error is None:
            if self._down_since is not None:
                log.info("event=service_reconnected after=%.1fs", time.monotonic() - self._down_since)
                self._down_since = None
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("event=service_unavailable error=%r url=%s retry=backoff", error.message,
                        mask_url(self.settings.database_url))
