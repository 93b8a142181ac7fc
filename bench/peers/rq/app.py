"""RQ as a contestant: `rq worker` on its own Redis database (forks a work horse per job)."""

from __future__ import annotations

import os

from peerside import body
from redis import Redis
from rq import Queue


def bench_incr(k: str, t: float | None = None) -> None:
    body(k, t)


def open() -> Queue:
    return Queue(
        os.environ["BENCH_QUEUE"], connection=Redis.from_url(os.environ["BENCH_RQ_REDIS_URL"])
    )


def submit(queue: Queue, k: str, t: float | None) -> None:
    queue.enqueue(bench_incr, k, t)


def submit_bulk(queue: Queue, k: str, n: int) -> None:
    queue.enqueue_many([Queue.prepare_data(bench_incr, (k, None)) for _ in range(n)])


def close(queue: Queue) -> None:
    queue.connection.close()
