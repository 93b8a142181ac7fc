"""The queue operations of jq_cli.client.Client: list the queues with their depth,
workers and rate, pause and resume them. A pause is a row in PostgreSQL that every worker's
claim reads (store.queues.job_claim_gated), so it holds across workers and restarts."""

from __future__ import annotations

from typing import Any

from jq_cli.errors import InvalidInput, ServiceUnavailable
from jq_cli.ops.audit import AuditOperations

RATE_WINDOW = 10  # seconds the completed-per-second figure is averaged over, as in jq top
RESUME_PUBLISH_BATCH = 1000
RESUME_PUBLISH_BATCHES = 10  # beyond these the scheduler's sweeper publishes the rest


def completed_event(queue: str) -> str:
    """The telemetry counter a worker adds to for each job of `queue` it completes."""
    return f"completed@{queue}"


class QueueOperations(AuditOperations):
    def queue_pause(self, name: str) -> dict[str, Any]:
        """Pause a queue: from the commit on, no worker starts a job of it; its jobs stay queued.
        Raises InvalidInput, ServiceUnavailable."""
        from jq_cli.model.jobspec import check_name

        check_name(name, "queue")
        with self._audited("queue.pause", target=name) as entry:
            changed = self.store.queue_set_paused(name, True, str(self.actor))
            entry.detail = {"changed": changed}
        return {"name": name, "paused": True, "changed": changed}

    def queue_resume(self, name: str) -> dict[str, Any]:
        """Resume a queue and publish its queued jobs again (their messages were acknowledged
        while it was paused); `published` says how many went out at once, the sweeper sends any
        rest. Raises InvalidInput, ServiceUnavailable."""
        from jq_cli.model.jobspec import check_name

        check_name(name, "queue")
        with self._audited("queue.resume", target=name) as entry:
            changed = self.store.queue_set_paused(name, False, str(self.actor))
            entry.detail = {"changed": changed}
        published = 0
        if changed:
            for _ in range(RESUME_PUBLISH_BATCHES):
                rows = self.store.job_republish_claim(name, 0.0, RESUME_PUBLISH_BATCH)
                self._publish_rows(rows)
                published += len(rows)
                if len(rows) < RESUME_PUBLISH_BATCH:
                    break
        return {"name": name, "paused": False, "changed": changed, "published": published}

    def queue_limit(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Limit a queue across every worker: at most `concurrency` of its jobs running at once,
        at most `rate` (e.g. 10/s) starts; with `key`, per value of that payload field. Neither
        removes the limit. Raises InvalidInput."""
        from jq_cli.model.jobspec import check_name
        from jq_cli.model.limits import Limit
        from jq_cli.store.limits import limit_fields

        check_name(name, "queue")
        limit = Limit.build(concurrency, rate, key)
        if key is not None and limit.empty:
            raise InvalidInput("--key goes with --concurrency or --rate")
        fields = limit_fields(limit)
        with self._audited("queue.limit", target=name, filter=fields):
            self.store.limit_set("queue", name, fields)
        return {"name": name, **fields}

    def queue_list(self) -> dict[str, Any]:
        """Every queue that has jobs, a row, a worker or is configured: its queued and running
        jobs (PostgreSQL), ready messages (RabbitMQ), paused or not, workers consuming it and
        completed jobs per second (Redis). A service that is down leaves its columns None and
        names itself in broker_error or telemetry_error."""
        queued: dict[str, int] = {}
        for count in self.store.job_counts()["queued"]:
            queued[count["queue"]] = queued.get(count["queue"], 0) + count["n"]
        running = self.store.queue_running_counts()
        rows = {r["name"]: r for r in self.store.queue_rows()}
        limits = {r["name"]: r for r in self.store.limit_rows() if r["scope"] == "queue"}
        workers, telemetry_error = None, None
        try:
            workers = self.telemetry.workers()
        except (ServiceUnavailable, InvalidInput) as exc:
            telemetry_error = exc.message
        names = (
            set(queued) | set(running) | set(rows) | set(limits) | set(self.settings.queue_names)
        )
        for w in workers or []:
            names.update(w.get("queues") or [])
        ordered = sorted(names)
        depths: dict[str, int | None] = {}
        broker_error = None
        try:
            depths = dict(self.publisher.queue_depths(ordered))
        except (ServiceUnavailable, InvalidInput) as exc:
            broker_error = exc.message
        rates: dict[str, list[int]] = {}
        if workers is not None:
            try:
                rates = self.telemetry.rates([completed_event(q) for q in ordered], RATE_WINDOW)
            except (ServiceUnavailable, InvalidInput) as exc:
                telemetry_error = exc.message
        queues = []
        for name in ordered:
            row = rows.get(name)
            series = rates.get(completed_event(name))
            queues.append(
                {
                    "name": name,
                    "queued": queued.get(name, 0),
                    "running": running.get(name, 0),
                    "broker_ready": depths.get(name),
                    "paused": bool(row and row["paused"]),
                    "paused_at": row["paused_at"] if row and row["paused"] else None,
                    "paused_by": row["paused_by"] if row and row["paused"] else None,
                    "workers": None
                    if workers is None
                    else sum(1 for w in workers if name in (w.get("queues") or [])),
                    "limit": _limit_text(limits.get(name)),
                    "completed_per_second": None
                    if series is None
                    else round(sum(series) / len(series), 2),
                }
            )
        return {"queues": queues, "broker_error": broker_error, "telemetry_error": telemetry_error}


def _limit_text(row: Any) -> str | None:
    if row is None:
        return None
    parts = []
    if row["concurrency"] is not None:
        parts.append(f"{row['concurrency']} at once")
    if row["rate_count"] is not None:
        parts.append(f"{row['rate_count']}/{row['rate_period']:g}s")
    return " ".join(parts) + (f" per {row['key_field']}" if row["key_field"] else "")
