"""The worker's cancel listener: a cancel of a running job reaches its handler within moments,
without the worker polling its jobs' rows (it renews leases only every third of the lease).

A thread beside the dispatcher with a PostgreSQL connection of its own. It LISTENs on the
namespace's cancel channel, on which the cancel statement (store/bulk.py, JOB_CANCEL) announces
each running job it asks to stop. The ids it hears go into a thread-safe queue and the
dispatcher is woken; the dispatcher, which owns its dicts of running jobs, applies them on its
own thread (take()). PostgreSQL keeps no notification for a session that was not listening, so
after every (re)connect the listener reads the cancels pending for this worker's running jobs;
the lease renewal reads them as well, a last line behind both.
"""

from __future__ import annotations

import logging
import queue
import threading

from jq_cli.config import Settings
from jq_cli.errors import JqError
from jq_cli.store.cancels import CancelQueries
from jq_cli.worker.pools import RunningJob

log = logging.getLogger("jq.worker")
WAIT = 1.0  # seconds a wait for notifications lasts, so that stop() is heard this quickly
MAX_RETRY_DELAY = 5.0  # seconds between reconnects at most, while PostgreSQL is away


def ask_to_stop(running: RunningJob, now: float) -> None:
    """Set the job's cancel flag (the handler sees ctx.cancelled) and start its stop grace, after
    which the dispatcher interrupts it (Dispatcher._enforce_limits)."""
    running.cancel.set()
    if running.cancel_seen is None:
        running.cancel_seen = now


class CancelListener:
    def __init__(self, settings: Settings, worker: str, wake: threading.Event) -> None:
        self.worker = worker
        self.wake = wake
        self.store = CancelQueries(
            settings.database_url, settings.namespace, application_name=f"jq-cancels {worker}"
        )
        self.listening = threading.Event()  # set while LISTEN is in place on a live session
        self.stopping = threading.Event()
        self._heard: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def take(self) -> list[int]:
        """The job ids whose cancel was heard since the last call (the dispatcher's thread)."""
        ids = []
        while True:
            try:
                ids.append(self._heard.get_nowait())
            except queue.Empty:
                return ids

    def _hand_over(self, ids: list[int]) -> None:
        if ids:
            for job_id in ids:
                self._heard.put(job_id)
            self.wake.set()

    def run_once(self, timeout: float = WAIT) -> None:
        """Listen (again after a reconnect, then catch up on the cancels missed meanwhile), then
        wait up to `timeout` for notifications. Raises ServiceUnavailable."""
        if not (self.listening.is_set() and self.store.has_session()):
            self.store.cancel_listen()
            # After LISTEN: a cancel committed from here on is announced, one before it is read.
            self._hand_over(self.store.job_cancels_pending(self.worker))
            self.listening.set()
        self._hand_over(self.store.cancel_wait(timeout))

    def run(self) -> None:
        delay = 0.25
        try:
            while not self.stopping.is_set():
                try:
                    was_down = delay > 0.25
                    self.run_once()
                    if was_down:
                        log.info("event=cancel_listener_reconnected worker=%s", self.worker)
                    delay = 0.25
                except JqError as exc:
                    if delay == 0.25:
                        log.warning(
                            "event=cancel_listener_unavailable error=%r note=cancels_arrive_with_lease_renewals",
                            exc.message,
                        )
                    self.listening.clear()
                    self.stopping.wait(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
                except Exception:  # a bug here must not end the worker: renewals still see cancels
                    log.exception("event=cancel_listener_error worker=%s", self.worker)
                    self.listening.clear()
                    self.store.close()
                    self.stopping.wait(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
        finally:
            self.store.close()  # on this thread: the connection is never used by two at once

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="cancel-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(WAIT + 5)
