"""Celery as a contestant: `celery -A app worker`, RabbitMQ broker, no result backend."""

from __future__ import annotations

import os

from celery import Celery
from peerside import body

app = Celery("bench", broker=os.environ["BENCH_AMQP_URL"])


@app.task(name="bench_incr")
def bench_incr(k: str, t: float | None = None) -> None:
    body(k, t)


def open() -> Celery:
    return app


def submit(_client: object, k: str, t: float | None) -> None:
    bench_incr.delay(k, t)


submit_bulk = None  # no bulk enqueue API (group() and chunks() publish message by message)


def close(client: Celery) -> None:
    client.close()
