"""Dramatiq as a contestant: `dramatiq app` with its RabbitMQ broker and default middleware."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from peerside import body

broker = RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor
def bench_incr(k: str, t: float | None = None) -> None:
    body(k, t)


def open() -> RabbitmqBroker:
    return broker


def submit(_client: object, k: str, t: float | None) -> None:
    bench_incr.send(k, t)


submit_bulk = None  # no bulk enqueue API (group() sends one message at a time)


def close(client: RabbitmqBroker) -> None:
    client.close()
