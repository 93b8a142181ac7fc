"""Where handlers run: a thread pool (the default), a process pool (hard time limits) and an
event loop (`async def` handlers). Each runs a job through the Executor and reports exactly one
outcome per job, and can stop a job that outlived its limit or ignored a cancel request.

A thread cannot be killed: the thread pool raises JobTimeout/ForcedCancel into the handler's
thread (PyThreadState_SetAsyncExc), which fires between bytecodes only. A thread stuck in a
blocking C call is abandoned: its slot gets a new thread, and whatever the old one reports
later is ignored. Only a child process can be stopped for certain: the process pool kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from jq_cli.config import Settings
from jq_cli.handlers.registry import CancelFlag, ForcedCancel, JobContext, JobTimeout
from jq_cli.store.records import Finish
from jq_cli.store.work import ClaimedJob
from jq_cli.worker.executor import Executor

log = logging.getLogger("jq.worker")


class CancelEvent:
    """A threading.Event that makes its lock and condition only when someone waits on it: a
    worker makes one per job, and most jobs are never cancelled nor wait on their flag."""

    __slots__ = ("_event", "_flag")
    _making = threading.Lock()

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True  # before the event is read: a waiter that made it meanwhile sees this
        event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        with CancelEvent._making:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._flag:  # set() may have run before the event existed
            event.set()
        return event.wait(timeout)


@dataclass(eq=False)
class RunningJob:
    """A job this worker runs: the dispatcher's record of it, shared with the pool running it."""

    job: ClaimedJob
    cancel: CancelFlag = field(default_factory=CancelEvent)
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic time past which the attempt times out
    lost: bool = False  # rescued by the scheduler while we were cut off; its outcome will not count
    cancel_seen: float | None = None  # when the dispatcher first saw a cancel request
    stop_reason: str | None = None  # "timeout" or "cancelled" once the worker stops the handler
    stop_at: float | None = None  # when a handler that was interrupted and did not end is abandoned
    done: bool = False  # its one outcome has been taken; any later one is ignored
    slot: Any = None  # where it runs (a thread slot, a process slot, an asyncio task)
    limit: float | None = None  # its time limit in seconds, counted from its start
    began: bool = False  # a slot started it (a job claimed ahead waits in the pool's queue)
    ended: float | None = None  # monotonic time its outcome was reported
    # Monotonic time of its claim or its last lease renewal: its next renewal is due a third of the
    # lease after it (jq_cli.worker.leases). Taken after the statement returned, so never before
    # the database's now() that set the lease.
    leased: float = 0.0

    def begin(self) -> None:
        """Its handler starts now: the run time and the time limit count from here, not from the
        claim (a job claimed ahead may wait a few milliseconds for a slot)."""
        self.started = time.monotonic()
        if self.limit:
            self.deadline = self.started + self.limit
        self.began = True

    @property
    def id(self) -> int:
        return self.job.id

    @property
    def run(self) -> int:
        return self.job.run_count


Reported = tuple[RunningJob, Finish]  # one outcome, as a pool reports it
Report = Callable[[RunningJob, Finish], None]
MakeContext = Callable[[RunningJob, CancelFlag], JobContext]
OnProgress = Callable[[int, float, str | None], None]


@dataclass(frozen=True)
class Contexts:
    """Makes the JobContext a handler gets in the worker's process (its threads, its event loop; a
    handler process makes its own)."""

    settings: Settings
    on_progress: OnProgress
    max_message_bytes: int

    def make(self, running: RunningJob, cancel: CancelFlag) -> JobContext:
        job = running.job
        return JobContext(
            job.id,
            job.attempts,
            settings=self.settings,
            on_progress=self.on_progress,
            cancel_event=cancel,  # a threading Event, or a multiprocessing one
            time_limit=running.limit,  # the dispatcher's choice at the claim
            max_message_bytes=self.max_message_bytes,
            parent_results=job.parent_results,  # workflow steps
        )


class Pool(Protocol):
    def submit(self, running: RunningJob) -> None: ...
    def interrupt(self, running: RunningJob, exc: type[BaseException]) -> None: ...
    def abandon(self, running: RunningJob) -> None: ...
    def resize(self, size: int) -> None: ...
    def shutdown(self) -> None: ...
    @property
    def abandoned(self) -> int: ...


@dataclass(eq=False)
class _ThreadSlot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    current: RunningJob | None = None
    ident: int | None = None
    abandoned: bool = False
    thread: threading.Thread | None = None


class ThreadPool:
    """A fixed set of daemon threads running sync handlers. Daemon threads, because a handler
    that ignores every stop must not keep the process alive past its shutdown grace."""

    def __init__(self, size: int, executor: Executor, make_ctx: MakeContext, report: Report):
        self._tasks: queue.SimpleQueue[RunningJob | None] = queue.SimpleQueue()
        self._executor, self._make_ctx, self._report = executor, make_ctx, report
        self.size = 0
        self._started = 0
        self._abandoned: list[_ThreadSlot] = []
        self.resize(size)

    @property
    def abandoned(self) -> int:
        """Abandoned threads still alive (stuck in a handler that never yielded)."""
        self._abandoned = [
            s for s in self._abandoned if s.thread is not None and s.thread.is_alive()
        ]
        return len(self._abandoned)

    def _start_thread(self) -> None:
        self._started += 1
        slot = _ThreadSlot()
        slot.thread = threading.Thread(
            target=self._loop, args=(slot,), name=f"handler-{self._started}", daemon=True
        )
        slot.thread.start()

    def resize(self, size: int) -> None:
        """Grow by starting threads; shrink by asking threads to exit once their job is done."""
        for _ in range(size - self.size):
            self._start_thread()
        for _ in range(self.size - size):
            self._tasks.put(None)
        self.size = size

    def submit(self, running: RunningJob) -> None:
        self._tasks.put(running)

    def _loop(self, slot: _ThreadSlot) -> None:
        slot.ident = threading.get_ident()
        while True:
            running = self._tasks.get()
            if running is None:
                return
            try:
                self._execute(slot, running)
            except BaseException:  # a stop that fired outside the handler: the dispatcher abandons
                log.warning(
                    "event=late_interrupt job=%d note=outcome_recorded_by_dispatcher", running.id
                )
            if slot.abandoned:
                return  # a replacement already took this slot

    def _execute(self, slot: _ThreadSlot, running: RunningJob) -> None:
        if running.done:
            return  # ended while it waited for a slot (stopped past a cancel's grace)
        running.slot = slot
        running.begin()
        ctx = self._make_ctx(running, running.cancel)
        finish = self._executor.run_sync(running.job, ctx, lambda: self._guard(slot, running))
        self._report(running, finish)

    @contextlib.contextmanager
    def _guard(self, slot: _ThreadSlot, running: RunningJob) -> Iterator[None]:
        with slot.lock:
            slot.current = running
        try:
            yield
        finally:
            with slot.lock:
                slot.current = None

    def interrupt(self, running: RunningJob, exc: type[BaseException]) -> None:
        slot = running.slot
        if not isinstance(slot, _ThreadSlot):
            return
        with slot.lock:  # only while that very job is in its handler, never into the next job
            if slot.current is running and slot.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(slot.ident), ctypes.py_object(exc)
                )

    def abandon(self, running: RunningJob) -> None:
        slot = running.slot
        if not isinstance(slot, _ThreadSlot) or slot.abandoned:
            return
        with slot.lock:
            if slot.current is not running:
                return  # it ended after all; its outcome is on its way
            slot.abandoned = True
        self._abandoned.append(slot)
        self._start_thread()
        log.warning(
            "event=handler_thread_abandoned job=%d abandoned=%d", running.id, self.abandoned
        )

    def shutdown(self) -> None:
        self.resize(0)


class AsyncRunner:
    """One event loop thread for `async def` handlers: many at a time, each one a task."""

    def __init__(self, executor: Executor, make_ctx: MakeContext, report: Report):
        self._executor, self._make_ctx, self._report = executor, make_ctx, report
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="async-handlers", daemon=True
        )
        self._thread.start()
        self._stuck = 0

    @property
    def abandoned(self) -> int:
        return self._stuck

    def submit(self, running: RunningJob) -> None:
        fut: Future[None] = asyncio.run_coroutine_threadsafe(self._run(running), self._loop)
        del fut

    async def _run(self, running: RunningJob) -> None:
        running.slot = asyncio.current_task()
        running.begin()
        try:
            ctx = self._make_ctx(running, running.cancel)
            finish = await self._executor.run_async(
                running.job, ctx, lambda: running.stop_reason or "cancelled"
            )
        except BaseException as exc:  # never lose the outcome
            finish = self._executor.failure(running.job, exc)
        self._report(running, finish)

    def interrupt(self, running: RunningJob, exc: type[BaseException]) -> None:
        task = running.slot
        if isinstance(task, asyncio.Task):
            self._loop.call_soon_threadsafe(task.cancel)

    def abandon(self, running: RunningJob) -> None:
        self._stuck += 1  # a task that swallowed its cancellation: its outcome will be ignored

    def resize(self, size: int) -> None:
        pass

    def shutdown(self) -> None:
        # Stopped, joined and closed here: a loop still open when the interpreter exits is
        # collected by BaseEventLoop.__del__, which writes an unstructured line to stderr
        # (and so breaks `--log-format json`). A task that will not stop leaves it open.
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=1.0)
        if not self._thread.is_alive():
            self._loop.close()


# -- the process pool -------------------------------------------------------------------------


def _child_main(conn: Connection, cancel: Any, executor: Executor, limit: int) -> None:
    """A handler process: run jobs sent down the pipe, send progress and outcomes back. Leaves
    with os._exit so that nothing inherited from the parent (its sockets) is closed from here."""
    lock = threading.Lock()

    def progress(job_id: int, percent: float, message: str | None) -> None:
        with lock:
            conn.send(("progress", job_id, percent, message))

    try:
        while True:
            job = conn.recv()
            if job is None:
                break
            ctx = JobContext(
                job.id,
                job.attempts,
                on_progress=progress,
                cancel_event=cancel,
                time_limit=job.time_limit,
                max_message_bytes=limit,
                parent_results=job.parent_results,
            )
            finish = executor.run_sync(job, ctx, contextlib.nullcontext)
            with lock:
                conn.send(("done", finish))
    except BaseException:  # the parent is gone or the pipe broke: nothing left to report to
        pass
    os._exit(0)


class _ProcessSlot:
    def __init__(self, pool: ProcessPool, index: int):
        self.pool, self.index = pool, index
        self.current: RunningJob | None = None
        self.lock = threading.Lock()
        self.proc: Any = None
        self.conn: Connection | None = None
        self.cancel: Any = None
        self.thread = threading.Thread(target=self._loop, name=f"handler-proc-{index}", daemon=True)
        self.thread.start()

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("fork")  # the child inherits the imported handlers
        parent, child = ctx.Pipe()
        self.cancel = ctx.Event()
        self.proc = ctx.Process(
            target=_child_main,
            args=(
                child,
                self.cancel,
                self.pool.executor,
                self.pool.executor.caps.max_error_bytes,
            ),
            name=f"jq-handler-{self.index}",
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.conn = parent

    def _loop(self) -> None:
        while True:
            running = self.pool.tasks.get()
            if running is None:
                self._stop_child()
                return
            try:
                self._run(running)
            except BaseException as exc:  # the slot survives whatever went wrong
                self.pool.report(running, self.pool.executor.failure(running.job, exc))

    def _run(self, running: RunningJob) -> None:
        if running.done:
            return  # ended while it waited for a slot (stopped past a cancel's grace)
        if self.proc is None or not self.proc.is_alive():
            self._spawn()
        running.begin()
        assert self.conn is not None
        self.cancel.clear()
        old, running.cancel = running.cancel, self.cancel
        if old.is_set():
            self.cancel.set()
        running.slot = self
        with self.lock:
            self.current = running
        try:
            self.conn.send(running.job)
            while True:
                message = self.conn.recv()
                if message[0] == "progress":
                    self.pool.on_progress(message[1], message[2], message[3])
                else:
                    self.pool.report(running, message[1])
                    return
        except (EOFError, OSError):
            self._child_died(running)
        finally:
            with self.lock:
                self.current = None

    def _child_died(self, running: RunningJob) -> None:
        code = self.proc.exitcode if self.proc is not None else None
        if self.proc is not None:
            self.proc.join(5)
        self.proc = None
        executor = self.pool.executor
        if running.stop_reason == "timeout":
            finish = executor.failure(running.job, JobTimeout())
        elif running.stop_reason == "cancelled":
            finish = executor.failure(running.job, ForcedCancel())
        else:
            finish = executor.failure(
                running.job, RuntimeError(f"the job's process died (exit code {code})")
            )
        self.pool.report(running, finish)

    def kill(self, running: RunningJob) -> None:
        with self.lock:
            if self.current is running and self.proc is not None:
                self.proc.kill()  # the reader sees the pipe close and reports the outcome

    def _stop_child(self) -> None:
        if self.proc is not None and self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.send(None)
            self.proc.join(2)
            if self.proc.is_alive():
                self.proc.kill()


class ProcessPool:
    """Handler processes, one per slot: a job over its limit (or cancelled and ignoring it) has
    its process killed, and the slot starts a fresh one for the next job."""

    def __init__(
        self,
        size: int,
        executor: Executor,
        report: Report,
        on_progress: OnProgress,
    ):
        self.executor, self.report, self.on_progress = executor, report, on_progress
        self.tasks: queue.SimpleQueue[RunningJob | None] = queue.SimpleQueue()
        self.size = 0
        self._slots = 0
        self.resize(size)

    @property
    def abandoned(self) -> int:
        return 0  # a process is killed, never abandoned

    def resize(self, size: int) -> None:
        for _ in range(size - self.size):
            self._slots += 1
            _ProcessSlot(self, self._slots)
        for _ in range(self.size - size):
            self.tasks.put(None)
        self.size = size

    def submit(self, running: RunningJob) -> None:
        self.tasks.put(running)

    def interrupt(self, running: RunningJob, exc: type[BaseException]) -> None:
        if isinstance(running.slot, _ProcessSlot):
            running.slot.kill(running)

    def abandon(self, running: RunningJob) -> None:
        self.interrupt(running, JobTimeout)

    def shutdown(self) -> None:
        self.resize(0)


# -- the pools of one worker ------------------------------------------------------------------

POOLS = ("thread", "process")


class Pools:
    """The worker's pools: one of its kind (threads or processes) for sync handlers and an event
    loop for `async def` ones. Made by start(), once the worker has connected, not before: a
    worker that never gets that far starts no thread and forks no process."""

    sync: Pool
    event_loop: AsyncRunner

    def __init__(
        self,
        kind: str,
        size: int,
        executor: Executor,
        contexts: Contexts,
        report: Report,
        on_progress: OnProgress,
    ) -> None:
        if kind not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {kind!r}")
        self.kind, self.size = kind, size
        self._executor, self._contexts = executor, contexts
        self._report, self._on_progress = report, on_progress

    def start(self) -> None:
        executor, report = self._executor, self._report
        if self.kind == "process":
            self.sync = ProcessPool(self.size, executor, report, self._on_progress)
        else:
            self.sync = ThreadPool(self.size, executor, self._contexts.make, report)
        self.event_loop = AsyncRunner(executor, self._contexts.make, report)

    def of(self, is_async: bool) -> Pool:
        return self.event_loop if is_async else self.sync

    def resize(self, size: int) -> None:
        self.size = size
        self.sync.resize(size)

    @property
    def abandoned(self) -> int:
        """Handler threads stuck past their time limit or a cancel, replaced but still alive."""
        return self.sync.abandoned + self.event_loop.abandoned

    def shutdown(self) -> None:
        self.sync.shutdown()
        self.event_loop.shutdown()
