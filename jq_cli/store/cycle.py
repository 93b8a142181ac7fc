"""The worker's round trip: the outcomes it holds and the deliveries it claims go to PostgreSQL
in one statement (store/hot_sql.py, JOB_FINISH_AND_CLAIM), one network wait and one WAL flush per
batch instead of one for its outcomes, one for its gates and one for its claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import tuple_row

from jq_cli.store.hot_sql import (
    CLAIMED_COLUMNS,
    JOB_FINISH,
    JOB_FINISH_AND_CLAIM,
    claim_params,
    finish_params,
)
from jq_cli.store.queues import QueueQueries
from jq_cli.store.records import Finish
from jq_cli.store.work import ClaimedJob


@dataclass(frozen=True)
class CycleResult:
    states: dict[int, str]  # {job id: new state} of the outcomes the guard let in
    claimed: list[ClaimedJob]  # the jobs claimed by the gated claim
    limited: bool  # a limit exists: the ids not claimed may still be taken by the limited claim


class CycleQueries(QueueQueries):
    def job_finish_and_claim(
        self, finishes: Sequence[Finish], ids: Sequence[int], worker: str, lease_ttl: float
    ) -> CycleResult:
        """job_finish and the gated claim of `ids`, committed together. Any refusal (a row that
        PostgreSQL will not store) rolls back both and raises: the caller then records the outcomes
        alone, row by row if need be (job_finish), and claims on its own (job_claim_gated)."""
        return self.with_deadlock_retry(
            "job_finish_and_claim",
            lambda: self._finish_and_claim(finishes, ids, worker, lease_ttl),
        )

    def _finish_and_claim(
        self, finishes: Sequence[Finish], ids: Sequence[int], worker: str, lease_ttl: float
    ) -> CycleResult:
        states: dict[int, str] = {}
        claimed: list[ClaimedJob] = []
        with self._errors():
            cursor = self.conn.cursor(row_factory=tuple_row)  # rows straight into ClaimedJob
            if finishes and ids:
                params = {**finish_params(finishes, worker), **claim_params(ids, worker, lease_ttl)}
                for row in cursor.execute(JOB_FINISH_AND_CLAIM, params).fetchall():
                    if row[CLAIMED_COLUMNS] is None:
                        claimed.append(ClaimedJob(*row[:CLAIMED_COLUMNS]))
                    else:
                        states[row[CLAIMED_COLUMNS]] = row[CLAIMED_COLUMNS + 1]
            elif finishes:
                rows = cursor.execute(JOB_FINISH, finish_params(finishes, worker)).fetchall()
                states = dict(rows)
            elif ids:  # nothing to record: the worker's claim as it stands alone
                return CycleResult({}, self.job_claim_gated(ids, worker, lease_ttl), False)
            # The gated claim takes nothing while any limit exists, and the limited claim must not
            # run in this statement's transaction. Only a claim that won less than it asked for
            # (duplicates, a paused queue, or a limit) needs to know which.
            limited = bool(ids) and len(claimed) < len(set(ids)) and self.limits_exist()
        return CycleResult(states, claimed, limited)
