"""Queues as rows: pause and resume, the claim that obeys a pause, and the depths
`jq queue list` shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict, cast

from jq_cli.store.hot_sql import JOB_CLAIM_GATED, claim_params
from jq_cli.store.limits import LimitQueries
from jq_cli.store.work import ClaimedJob


class QueueRow(TypedDict):
    """A queue's row (`queues`); a queue without one is not paused."""

    name: str
    paused: bool
    paused_at: Any
    paused_by: str | None


class QueueQueries(LimitQueries):
    # A WorkQueries (through LimitQueries): the gated claim ends in the worker's own job_claim.
    def queue_set_paused(self, name: str, paused: bool, by: str) -> bool:
        """Pause or resume a queue; True when that changed it. A queue's row is made by its first
        pause; resuming a queue that has none changes nothing."""
        if not paused:
            return bool(
                self._run(
                    # query: queue_resume
                    """
                    UPDATE queues SET paused = false, paused_at = NULL, paused_by = NULL,
                                      updated_at = now()
                    WHERE name = %(name)s AND paused
                    """,
                    {"name": name},
                )
            )
        row = self._one(
            # query: queue_pause. An upsert that changes only a running queue, so the caller can
            # tell a second pause from the first.
            """
            INSERT INTO queues AS q (name, paused, paused_at, paused_by)
            VALUES (%(name)s, true, now(), %(by)s)
            ON CONFLICT (name) DO UPDATE
                SET paused = true, paused_at = now(), paused_by = EXCLUDED.paused_by,
                    updated_at = now()
                WHERE NOT q.paused
            RETURNING name
            """,
            {"name": name, "by": by},
        )
        return row is not None

    def queue_rows(self) -> list[QueueRow]:
        return cast(
            list[QueueRow],
            self._all(
                "SELECT name, paused, paused_at, paused_by FROM queues ORDER BY name"  # query: queue_rows
            ),
        )

    def queue_names_known(self) -> set[str]:
        """Every queue this database knows of: one that has (or had) jobs, by the job_counts
        summary (a few dozen rows, never the jobs table), a row, a limit, or is the default
        queue a worker registered for its type. Where `jq submit --queue` may go without
        --new-queue (a typo would otherwise make a queue no worker reads)."""
        rows = self._all(
            # query: queue_names_known
            """
            SELECT queue AS name FROM job_counts
            UNION SELECT name FROM queues
            UNION SELECT name FROM limits WHERE scope = 'queue'
            UNION SELECT defaults->>'queue' FROM job_types WHERE defaults->>'queue' IS NOT NULL
            """
        )
        return {r["name"] for r in rows}

    def queue_paused(self) -> set[str]:
        """The names of the paused queues (a handful of rows)."""
        return {r["name"] for r in self._all("SELECT name FROM queues WHERE paused")}

    def queue_running_counts(self) -> dict[str, int]:
        """Running jobs per queue, along the partial index of running jobs (jobs_running)."""
        rows = self._all(
            # query: job_count_running_by_queue
            "SELECT queue, count(*) AS n FROM jobs WHERE state = 'running' GROUP BY queue"
        )
        return {r["queue"]: r["n"] for r in rows}

    def job_claim_gated(
        self, ids: Sequence[int], worker: str, lease_ttl: float
    ) -> list[ClaimedJob]:
        """job_claim for the delivered `ids` whose queue is not paused and that no limit holds
        back. A job of a paused queue stays queued; the worker acknowledges its message as it
        would a duplicate's, and the job is published again when its queue resumes. The gates are
        read in the claim statement itself (store/hot_sql.py, JOB_CLAIM_GATED) from committed
        rows: a claim that starts after a pause commits takes nothing of that queue. (No lock on
        the queue row: a lock taken by every claim would make that row the hottest of the
        database.) While any limit exists that statement claims nothing, and the limited claim,
        which counts under locks, takes what fits."""
        claimed = self._claimed_jobs(JOB_CLAIM_GATED, claim_params(ids, worker, lease_ttl))
        if len(claimed) == len(set(ids)) or not self.limits_exist():
            return claimed  # all won, or the rest were duplicates or of a paused queue
        won = {job.id for job in claimed}
        rest = [i for i in ids if i not in won]
        return claimed + self.job_claim_limited(rest, worker, lease_ttl, self.limit_rows())
