"""The live workers as their Redis heartbeats show them, for the sweep and the gauges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jq_cli.errors import TelemetryUnavailable

if TYPE_CHECKING:
    from jq_cli.observe.telemetry import Telemetry


class WorkerCensus:
    """One Redis connection, made at the first question and shared by the duties that ask. Redis
    is live telemetry only (docs/design.md, Roles of the three services): when it is away the
    answer is None and each duty does without."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self._telemetry: Telemetry | None = None

    def workers(self) -> list[dict[str, Any]] | None:
        """The workers whose heartbeat has not expired, or None when Redis cannot say."""
        try:
            if self._telemetry is None:
                from jq_cli.observe.telemetry import Telemetry

                self._telemetry = Telemetry(self.redis_url, self.namespace)
            return self._telemetry.workers()
        except TelemetryUnavailable:
            return None

    def close(self) -> None:
        if self._telemetry is not None:
            self._telemetry.close()
