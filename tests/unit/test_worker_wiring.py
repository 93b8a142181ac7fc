"""The worker is made of parts handed to each other, not of stacked bases: made with no service
reachable, it connects to nothing and starts no thread until run()."""

from __future__ import annotations

import threading

import pytest
from jq_cli.worker.daemon import Worker

from .worker_standins import registry_of, settings

NOWHERE = {
    "database_url": "postgresql://127.0.0.1:1/none",
    "rabbitmq_url": "amqp://guest:guest@127.0.0.1:1/",
    "redis_url": "redis://127.0.0.1:1/0",
}


def make_worker(**kwargs) -> Worker:
    return Worker(settings(**NOWHERE), registry_of(), name="w1", **kwargs)


def test_the_worker_holds_its_parts_and_each_part_the_others_it_uses():
    threads = threading.active_count()
    w = make_worker(concurrency=3)
    assert Worker.__mro__ == (Worker, object)
    assert threading.active_count() == threads  # nothing started, nothing connected
    d = w.dispatcher
    assert d.intake is w.intake and d.pools is w.pools and d.executor is w.executor
    assert d.store is w.store is w.intake.store and w.intake.consumer is w.consumer
    assert w.pools.kind == "thread" and w.pools.size == 3
    assert (w.prefetch, w.running, w.duplicates, w.poison, w.processed) == (3, {}, 0, 0, 0)


def test_the_prefetch_window_follows_the_slots_unless_given():
    assert make_worker(concurrency=5).intake.prefetch_fixed is False
    fixed = make_worker(concurrency=5, prefetch=40)
    assert fixed.prefetch == 40 and fixed.intake.prefetch_fixed is True


def test_an_unknown_pool_kind_is_refused():
    with pytest.raises(ValueError, match="pool must be one of thread, process"):
        make_worker(pool="fibers")
