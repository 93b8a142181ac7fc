"""Prometheus metrics of the daemons (`jq worker --metrics-port`, `jq scheduler --metrics-port`).

Each daemon owns one registry; nothing is global, so tests can run several daemons in one
process. Labelled children are cached, because the worker records a few metrics per job on
its hot path.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from jq_cli import __version__

# Seconds: no-op jobs take well under a millisecond, videos minutes.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600)


class DaemonMetrics:
    """The metrics one daemon exposes. Outcomes are counted by the state the job went to."""

    def __init__(self, role: str) -> None:
        self.registry = CollectorRegistry()
        Info("jq_build", "jq version and the role of this process", registry=self.registry).info(
            {"version": __version__, "role": role}
        )
        self.started = Counter(
            "jq_jobs_started", "Attempts started", ["job_type", "queue"], registry=self.registry
        )
        self.finished = Counter(
            "jq_jobs_finished",
            "Attempts finished, by the state the job went to",
            ["job_type", "queue", "state"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "jq_job_duration_seconds",
            "Run time of an attempt",
            ["job_type", "queue"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.wait = Histogram(
            "jq_job_queue_wait_seconds",
            "Time from due to started",
            ["job_type", "queue"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.depth = Gauge(
            "jq_jobs",
            "Jobs by state and priority (the leading scheduler only)",
            ["state", "priority"],
            registry=self.registry,
        )
        self.workers = Gauge(
            "jq_workers_alive",
            "Workers with a live heartbeat (the leading scheduler only)",
            registry=self.registry,
        )
        self.leader = Gauge(
            "jq_scheduler_leader", "1 while this scheduler leads", registry=self.registry
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children[key] = metric.labels(*labels)
        return child

    def job_started(self, job_type: str, queue: str, waited: float | None) -> None:
        self._child(self.started, job_type, queue).inc()
        if waited is not None:
            self._child(self.wait, job_type, queue).observe(max(0.0, waited))

    def job_finished(self, job_type: str, queue: str, state: str, seconds: float) -> None:
        self._child(self.finished, job_type, queue, state).inc()
        self._child(self.duration, job_type, queue).observe(seconds)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Serve /metrics on a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
