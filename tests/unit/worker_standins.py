"""Stand-ins for what the worker's parts ask of the services (a store, a broker's consumer, a
pool), and a worker's parts wired as jq_cli.worker.daemon.Worker wires them, around those."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jq_cli.broker import Delivery
from jq_cli.config import Settings
from jq_cli.handlers.registry import Registry
from jq_cli.model.retry import Backoff
from jq_cli.observe.telemetry import CounterBuffer
from jq_cli.store import CycleResult, Finish
from jq_cli.store.work import ClaimedJob, HandedBack
from jq_cli.worker.claim_ahead import RunTimes
from jq_cli.worker.dispatcher import Dispatcher
from jq_cli.worker.executor import Executor
from jq_cli.worker.handoff import Inbox, Outbox, Progress, Wake
from jq_cli.worker.intake import Intake
from jq_cli.worker.outcomes import SizeCaps
from jq_cli.worker.pools import Contexts, Pools, RunningJob


def claimed_job(
    job_id: int, job_type: str = "noop", priority: int = 0, **fields: Any
) -> ClaimedJob:
    values: dict[str, Any] = {
        "id": job_id,
        "job_type": job_type,
        "queue": "default",
        "priority": priority,
        "payload": {},
        "attempts": 1,
        "run_count": 1,
        "max_retries": 3,
        "retry_base_delay": None,
        "retry_max_delay": None,
        "retry_jitter": None,
        "cancel_requested": False,
        "waited": 0.0,
        "time_limit": None,
        "hand_backs": 0,
        "parent_results": None,
        "trace_context": None,
    }
    values.update(fields)
    return ClaimedJob(**values)


def delivery(job_id: int | str, tag: int, priority: int = 0, generation: int = 1) -> Delivery:
    return Delivery(generation, tag, str(job_id).encode(), priority, False)


class StubConsumer:
    """The broker's side of the intake: what was acknowledged, rejected, and the window set."""

    def __init__(self) -> None:
        self.generation = 1
        self.acked: list[int] = []
        self.rejected: list[tuple[int, bool]] = []  # (tag, requeue)
        self.prefetches: list[int] = []

    def ack(self, generation: int, tags: Sequence[int]) -> None:
        self.acked.extend(tags)

    def reject(self, generation: int, tags: Sequence[int], requeue: bool) -> None:
        self.rejected.extend((t, requeue) for t in tags)

    def set_prefetch(self, prefetch: int) -> None:
        self.prefetches.append(prefetch)


class StubStore:
    """PostgreSQL as the worker sees it: jobs queued to be claimed, jobs in other states, and
    every statement the worker sent, in order (`calls`). `refuse` makes the next call of that
    name raise the exception given."""

    def __init__(self) -> None:
        self.queued: dict[int, ClaimedJob] = {}
        self.states: dict[int, str] = {}  # jobs not queued (claimed elsewhere, ended)
        self.mine: set[int] = set()  # running here: finishes and renewals count
        self.cancel_requested: set[int] = set()
        self.limited = False  # a limit exists: the cycle's gated claim takes only `gated_ok`
        self.gated_ok: set[int] = set()
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: dict[str, BaseException] = {}

    def queue(self, *jobs: ClaimedJob) -> None:
        for job in jobs:
            self.queued[job.id] = job

    def _check(self, name: str) -> None:
        exc = self.refuse.pop(name, None)
        if exc is not None:
            raise exc

    def _claim(self, ids: Sequence[int]) -> list[ClaimedJob]:
        won = [self.queued.pop(i) for i in ids if i in self.queued]
        for job in won:
            self.states[job.id] = "running"
            self.mine.add(job.id)
        return won

    def _finish(self, finishes: Sequence[Finish]) -> dict[int, str]:
        states = {}
        for f in finishes:
            if f.job_id in self.mine:
                self.mine.discard(f.job_id)
                state = "completed" if f.outcome == "completed" else "retrying"
                states[f.job_id] = self.states[f.job_id] = state
        return states

    def job_finish_and_claim(
        self, finishes: Sequence[Finish], ids: Sequence[int], worker: str, lease_ttl: float
    ) -> CycleResult:
        self.calls.append(("finish_and_claim", [f.job_id for f in finishes], list(ids)))
        self._check("job_finish_and_claim")
        states = self._finish(finishes)
        if self.limited:
            return CycleResult(states, self._claim([i for i in ids if i in self.gated_ok]), True)
        return CycleResult(states, self._claim(ids), False)

    def job_finish(self, finishes: Sequence[Finish], worker: str) -> dict[int, str]:
        self.calls.append(("finish", [f.job_id for f in finishes]))
        self._check("job_finish")
        return self._finish(finishes)

    def job_claim_gated(
        self, ids: Sequence[int], worker: str, lease_ttl: float
    ) -> list[ClaimedJob]:
        self.calls.append(("claim", list(ids)))
        self._check("job_claim_gated")
        return self._claim(ids)

    def job_states(self, ids: Sequence[int]) -> dict[int, str]:
        self.calls.append(("states", list(ids)))
        self._check("job_states")
        return {i: self.states[i] for i in ids if i in self.states}

    def job_lease_renew(self, ids: Sequence[int], worker: str, lease_ttl: float) -> dict[int, bool]:
        self.calls.append(("renew", list(ids)))
        self._check("job_lease_renew")
        return {i: i in self.cancel_requested for i in ids if i in self.mine}

    def job_progress(self, updates: dict[int, tuple[float, str | None]], worker: str) -> None:
        self.calls.append(("progress", dict(updates)))
        self._check("job_progress")

    def job_type_live_elsewhere(
        self, job_types: Sequence[str], worker: str, within: float
    ) -> set[str]:
        return set()

    def job_hand_over(
        self, delays: dict[int, tuple[int, float]], worker: str, note: str
    ) -> list[HandedBack]:
        self.calls.append(("hand_over", sorted(delays)))
        return []

    def worker_types_refresh(self, worker: str) -> None:
        pass

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


class StubPool:
    """A pool that runs nothing: what was submitted, interrupted and abandoned. `start` makes a
    slot take each job as it comes (RunningJob.begin), as an idle pool would."""

    def __init__(self, start: bool = True) -> None:
        self.start = start
        self.submitted: list[RunningJob] = []
        self.interrupted: list[tuple[RunningJob, type[BaseException]]] = []
        self.abandoned_jobs: list[RunningJob] = []
        self.size = 0

    def submit(self, running: RunningJob) -> None:
        self.submitted.append(running)
        if self.start:
            running.begin()

    def interrupt(self, running: RunningJob, exc: type[BaseException]) -> None:
        self.interrupted.append((running, exc))

    def abandon(self, running: RunningJob) -> None:
        self.abandoned_jobs.append(running)

    def resize(self, size: int) -> None:
        self.size = size

    def shutdown(self) -> None:
        pass

    @property
    def abandoned(self) -> int:
        return len(self.abandoned_jobs)


class NoCancels:
    def __init__(self) -> None:
        self.heard: list[int] = []

    def take(self) -> list[int]:
        heard, self.heard = self.heard, []
        return heard


def noop(payload: Any, ctx: Any) -> dict[str, bool]:
    return {"ok": True}


def registry_of(**handlers: Any) -> Registry:
    registry = Registry()
    for name, fn in (handlers or {"noop": noop}).items():
        registry.register(name, fn)
    return registry


@dataclass
class Parts:
    """A worker's parts, wired as Worker wires them, around stand-ins of the services."""

    store: StubStore
    consumer: StubConsumer
    pool: StubPool
    inbox: Inbox
    outbox: Outbox
    intake: Intake
    dispatcher: Dispatcher
    executor: Executor
    stopping: threading.Event
    counters: CounterBuffer
    cancels: NoCancels = field(default_factory=NoCancels)

    def deliver(self, *deliveries: Delivery) -> None:
        for d in deliveries:
            self.inbox.put(d)

    def complete(self, running: RunningJob, outcome: str = "completed") -> None:
        """A handler's outcome, reported as a pool reports it."""
        result = "null" if outcome == "completed" else None
        self.outbox.report(running, Finish(running.id, running.run, outcome, result))


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, namespace="unit", **overrides)


def worker_parts(
    *,
    registry: Registry | None = None,
    concurrency: int = 4,
    lease_ttl: float = 30.0,
    prefetch: int | None = None,
    start: bool = True,
    metrics: Any = None,
) -> Parts:
    conf = settings(lease_ttl=lease_ttl)
    registry = registry or registry_of()
    store, consumer, pool = StubStore(), StubConsumer(), StubPool(start)
    wake = Wake()
    inbox = Inbox(wake)
    caps = SizeCaps(conf.max_result_bytes, conf.max_error_bytes)
    outbox = Outbox(wake, caps)
    progress = Progress()
    runtimes = RunTimes()
    intake = Intake(
        inbox,
        consumer,
        store,
        runtimes,
        worker="w1",
        lease_ttl=lease_ttl,
        concurrency=concurrency,
        prefetch=prefetch or concurrency,
        prefetch_fixed=prefetch is not None,
    )
    executor = Executor(registry, Backoff(1.0, 10.0, 0.0), caps, "w1")
    pools = Pools(
        "thread",
        concurrency,
        executor,
        Contexts(conf, progress.put, caps.max_error_bytes),
        outbox.report,
        progress.put,
    )
    pools.sync = pools.event_loop = pool  # started by the test: a pool that runs nothing
    stopping = threading.Event()
    counters = CounterBuffer()
    cancels = NoCancels()
    dispatcher = Dispatcher(
        settings=conf,
        registry=registry,
        name="w1",
        store=store,
        intake=intake,
        pools=pools,
        executor=executor,
        outbox=outbox,
        progress=progress,
        cancels=cancels,
        runtimes=runtimes,
        counters=counters,
        wake=wake,
        stopping=stopping,
        metrics=metrics,
    )
    return Parts(
        store,
        consumer,
        pool,
        inbox,
        outbox,
        intake,
        dispatcher,
        executor,
        stopping,
        counters,
        cancels,
    )
