"""What passes between the worker's threads, and how: the dispatcher owns everything else.

- Wake: anyone wakes the dispatcher (once per round for all that arrives meanwhile);
- Inbox: deliveries, from the consumer thread (the AMQP connection's) to the dispatcher;
- Outbox: one outcome per job, from the pools' threads (handlers) to the dispatcher;
- Progress: handlers' progress reports, the latest per job, to the dispatcher.

Each is a small object the worker makes once and hands to both sides (constructor arguments), so
that what crosses a thread is named in one place.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable

from jq_cli.broker import Delivery
from jq_cli.store.records import Finish
from jq_cli.worker.outcomes import SizeCaps, sanitise
from jq_cli.worker.pools import Reported, RunningJob


class Wake:
    """The dispatcher's alarm: it waits on `event` between rounds."""

    __slots__ = ("event", "pending")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.pending = False  # signalled since the dispatcher last rearmed

    def signal(self) -> None:
        """Wake the dispatcher, once for everything reported or delivered until its next round (a
        wake per job costs a lock and a notify on the hot path)."""
        if not self.pending:
            self.pending = True
            self.event.set()

    def rearm(self) -> None:
        """The dispatcher's, before it reads anything: whatever comes later wakes it again."""
        self.pending = False

    def set(self) -> None:
        """Wake it now, whatever was signalled (a stop, a reload)."""
        self.event.set()


class Inbox:
    """Deliveries not yet claimed. The consumer thread puts; the dispatcher takes, puts back and
    hands back to the broker."""

    def __init__(self, wake: Wake) -> None:
        self._items: list[Delivery] = []
        self._lock = threading.Lock()
        self._wake = wake

    # -- the consumer thread -------------------------------------------------------------------

    def put(self, delivery: Delivery) -> None:
        with self._lock:
            self._items.append(delivery)
        self._wake.signal()

    def drop_generation(self, generation: int) -> None:
        """A connection was lost: its unacknowledged deliveries go back to the broker by
        themselves, and their tags mean nothing on the next connection."""
        with self._lock:
            self._items = [d for d in self._items if d.generation != generation]

    # -- the dispatcher ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)  # a glance, without the lock: pacing needs no more

    def take(self, n: int, generation: int) -> list[Delivery]:
        """Up to `n` deliveries of the current connection, the highest priority first (strict
        priorities: of what has been delivered, the highest goes first)."""
        with self._lock:
            if not self._items:
                return []
            items = [d for d in self._items if d.generation == generation]
            items.sort(key=_by_priority)
            taken, self._items = items[:n], items[n:]
        return taken

    def put_back(self, deliveries: list[Delivery]) -> None:
        """Deliveries taken but not claimed (PostgreSQL was away): first in line again."""
        if deliveries:
            with self._lock:
                self._items[:0] = deliveries

    def trim(self, keep: int) -> list[Delivery]:
        """Keep the `keep` highest priorities; returns the rest (for the broker to take back)."""
        with self._lock:
            self._items.sort(key=_by_priority)
            self._items, extra = self._items[:keep], self._items[keep:]
        return extra

    def take_all(self) -> list[Delivery]:
        with self._lock:
            items, self._items = self._items, []
        return items


def _by_priority(d: Delivery) -> int:
    return -d.priority


class Outbox:
    """Outcomes, one per job, from any thread to the dispatcher; they stay here, sanitised, until
    PostgreSQL has them (saved()), so that a commit that fails loses none."""

    def __init__(self, wake: Wake, caps: SizeCaps) -> None:
        self._queue: queue.SimpleQueue[Reported] = queue.SimpleQueue()
        self._unsaved: list[Reported] = []
        self._wake = wake
        self.caps = caps

    def report(self, running: RunningJob, finish: Finish) -> None:
        """A job's outcome (a pool's thread, or the dispatcher's when it ends a job itself)."""
        running.ended = time.monotonic()
        self._queue.put((running, finish))
        self._wake.signal()

    def collect(self) -> list[Reported]:
        """The outcomes reported since the last call, sanitised, after any not yet saved. The
        first outcome of a run counts; a later one (a run the worker already ended: abandoned,
        killed) is dropped."""
        batch = self._unsaved
        get = self._queue.get_nowait
        caps = self.caps
        while True:
            try:
                running, finish = get()
            except queue.Empty:
                break
            if running.done:
                continue
            running.done = True
            batch.append((running, sanitise(finish, caps)))
        self._unsaved = batch
        return batch

    def saved(self) -> None:
        """PostgreSQL has the outcomes collect() gave."""
        self._unsaved = []


class Progress:
    """The latest progress of each running job, written by handlers, flushed by the dispatcher
    (coalesced: one statement for all jobs every PROGRESS_FLUSH)."""

    def __init__(self) -> None:
        self._latest: dict[int, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def put(self, job_id: int, percent: float, message: str | None) -> None:
        with self._lock:
            self._latest[job_id] = (percent, message)

    def take(self) -> dict[int, tuple[float, str | None]]:
        with self._lock:
            updates, self._latest = self._latest, {}
        return updates

    def restore(self, updates: dict[int, tuple[float, str | None]]) -> None:
        """Updates whose write failed: kept, unless a newer one came meanwhile."""
        with self._lock:
            self._latest = {**updates, **self._latest}

    def forget(self, job_ids: Iterable[int]) -> None:
        """Jobs that ended: a late report of theirs is not written."""
        with self._lock:
            for job_id in job_ids:
                self._latest.pop(job_id, None)
