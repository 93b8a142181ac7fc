"""The gauges duty: queue depth by state and priority, and live workers, for Prometheus."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jq_cli.model.states import PRIORITY_NAMES
from jq_cli.scheduler.census import WorkerCensus
from jq_cli.store import Store

if TYPE_CHECKING:
    from jq_cli.observe.metrics import DaemonMetrics

GAUGE_EVERY = 5.0  # seconds between queue-depth computations


@dataclass(frozen=True)
class GaugeReading:
    """What the gauges were set to: jobs by state, and workers alive (None: Redis was away and
    the gauge kept its last value)."""

    by_state: dict[str, int] = field(default_factory=dict)
    workers: int | None = None


class Gauges:
    """Reads the job_counts summary (a few dozen rows, whatever the table's size) and the worker
    census into the daemon's metrics. Only the leader runs it, so that a dashboard summing over
    schedulers does not count twice."""

    def __init__(self, store: Store, census: WorkerCensus, metrics: DaemonMetrics) -> None:
        self.store = store
        self.census = census
        self.metrics = metrics

    def run_once(self) -> GaugeReading:
        """Set the depth and workers gauges. Returns what they were set to."""
        counts = self.store.job_counts()
        depth = self.metrics.depth
        depth.clear()
        for state, n in counts["by_state"].items():
            depth.labels(state, "all").set(n)
        for row in counts["queued"]:
            depth.labels("queued", PRIORITY_NAMES.get(row["priority"], "?")).inc(row["n"])
        workers = self.census.workers()
        if workers is not None:  # telemetry is optional: else the gauge keeps its last value
            self.metrics.workers.set(len(workers))
        return GaugeReading(dict(counts["by_state"]), None if workers is None else len(workers))
