"""The shim's Prometheus metrics: requests by route and status, and the queue's jobs by state,
priority and queue, read from ops.stats() at each scrape (so they are never stale)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jq_cli import __version__
from jq_cli.errors import JqError
from jq_cli.http.pool import OpsPool

log = logging.getLogger("jq.http")


class QueueCollector(Collector):
    """Gauges computed on scrape. When Postgres is down only jq_stats_up (0) is reported, so a
    scrape never fails and an alert can fire on it."""

    def __init__(self, pool: OpsPool) -> None:
        self.pool = pool

    def describe(self) -> list[Metric]:
        return []  # computed on scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "jq_stats_up", "1 if the last scrape could read the queue's counts from PostgreSQL"
        )
        try:
            with self.pool.borrow() as ops:
                stats = ops.stats()
        except JqError as exc:
            log.warning("metrics: queue counts unavailable: %s", exc.message)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        # The same series as the leading scheduler's jq_jobs gauge (priority "all" for every state,
        # then queued by priority), so that a dashboard reads either source the same way.
        jobs = GaugeMetricFamily(
            "jq_jobs", "Jobs by state and priority", labels=["state", "priority"]
        )
        for state, n in stats["by_state"].items():
            jobs.add_metric([state, "all"], n)
        for priority, n in stats["queued_by_priority"].items():
            jobs.add_metric(["queued", priority], n)
        yield jobs
        queued = GaugeMetricFamily(
            "jq_queue_jobs_queued", "Queued jobs by queue, in PostgreSQL", labels=["queue"]
        )
        ready = GaugeMetricFamily(
            "jq_queue_broker_ready", "Messages ready in the broker by queue", labels=["queue"]
        )
        for queue, depth in stats["queues"].items():
            queued.add_metric([queue], depth["queued"])
            if depth.get("broker_ready") is not None:
                ready.add_metric([queue], depth["broker_ready"])
        yield queued
        yield ready
        if stats.get("workers") is not None:
            workers = GaugeMetricFamily("jq_workers_alive", "Workers with a live heartbeat")
            workers.add_metric([], len(stats["workers"]))
            yield workers


class HttpMetrics:
    """One registry per app (not the process-wide default), so that several apps, as in tests,
    never collide."""

    def __init__(self, pool: OpsPool) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jq_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "jq_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            registry=self.registry,
        )
        Info("jq_build", "jq build information", registry=self.registry).info(
            {"version": __version__}
        )
        self.registry.register(QueueCollector(pool))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
