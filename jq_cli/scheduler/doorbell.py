"""The doorbell: publishes the jobs committed in applications' own transactions (and dependants
released by their last parent) as soon as PostgreSQL announces the commit, instead of at the
sweeper's next pass (docs/design.md, Invariant 7).

A thread beside every `jq scheduler` (leader or not: the outbox drain skips rows another doorbell
holds, so each job is published by one of them). It LISTENs on the namespace's channel, drains the
outbox on every notification and every DRAIN_EVERY seconds (a notification sent while no doorbell
listened is not kept by PostgreSQL; the outbox row is), and reconnects with back-off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from jq_cli.broker import Message, Publisher
from jq_cli.config import Settings
from jq_cli.errors import JqError
from jq_cli.store.outbox import OutboxQueries
from jq_cli.store.rows import JobRef

log = logging.getLogger("jq.doorbell")
DRAIN_EVERY = 1.0  # seconds between drains when no notification comes
DRAIN_BATCH = 1000


class Doorbell:
    """Drains the outbox (job_outbox_drain) through its own publisher: its own connections, as
    it runs on its own thread and a pika connection is not thread-safe."""

    def __init__(self, outbox: OutboxQueries, publisher: Publisher) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.stopping = threading.Event()
        self.published = 0
        self._listening = False
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, name: str = "doorbell") -> Doorbell:
        """A doorbell with connections of its own to the settings' database and broker."""
        outbox = OutboxQueries(
            settings.database_url, settings.namespace, application_name=f"jq-doorbell {name}"
        )
        return cls(outbox, Publisher(settings.rabbitmq_url, settings.namespace))

    def _publish(self, rows: Sequence[JobRef]) -> None:
        # Raises BrokerUnavailable: the drain rolls back and the rows wait for the next one.
        self.publisher.publish(Message(r["id"], r["queue"], r["priority"]) for r in rows)
        self.published += len(rows)

    def run_once(self, timeout: float = DRAIN_EVERY) -> int:
        """Listen (after a reconnect too), drain the outbox, then wait up to `timeout` for the
        next notification. Returns the rows drained. Raises ServiceUnavailable."""
        if not (self._listening and self.outbox.has_session()):
            self.outbox.outbox_listen()
            self._listening = True
        drained = 0
        while True:
            n = self.outbox.job_outbox_drain(DRAIN_BATCH, self._publish)
            drained += n
            if n < DRAIN_BATCH:
                break
        if timeout > 0:
            self.outbox.outbox_wait(timeout)
        return drained

    def run(self) -> None:
        delay = 0.25
        while not self.stopping.is_set():
            try:
                self.run_once()
                delay = 0.25
            except JqError as exc:
                self._listening = False
                log.warning(
                    "event=doorbell_unavailable error=%r retry_in=%.1fs", exc.message, delay
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception:  # a bug here must not end the scheduler; the sweeper covers the jobs
                log.exception("event=doorbell_error")
                self.stopping.wait(delay)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="doorbell", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(DRAIN_EVERY + 5)
        self.outbox.close()
        self.publisher.close()
