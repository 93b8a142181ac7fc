"""The worker's round trip: the outcomes it holds and the deliveries it claims go to PostgreSQL
together, one network wait and one WAL flush per batch instead of one for its outcomes, one for
its gates and one for its claim. Both statements go in one pipeline (psycopg's pipeline mode) with
one sync at its end, which PostgreSQL runs as one implicit transaction: both commit, or neither.
A round trip with only outcomes or only claims is one plain statement (an explicit BEGIN/COMMIT
would cost a fifth more on an idle worker's path)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Cursor
from psycopg.rows import class_row

from jq_cli.store.records import Finish
from jq_cli.store.work import (
    JOB_CLAIM_GATED,
    JOB_FINISH,
    ClaimedJob,
    WorkQueries,
    claim_params,
    finish_params,
)


@dataclass(frozen=True)
class CycleResult:
    states: dict[int, str]  # {job id: new state} of the outcomes the guard let in
    claimed: list[ClaimedJob]  # the jobs claimed by the gated claim
    limited: bool  # a limit exists: the ids not claimed may still be taken by the limited claim


class CycleQueries(WorkQueries):
    def job_finish_and_claim(
        self, finishes: Sequence[Finish], ids: Sequence[int], worker: str, lease_ttl: float
    ) -> CycleResult:
        """job_finish and the gated claim of `ids`, committed together. Any refusal (a row that
        PostgreSQL will not store) rolls back both and raises: the caller then records the outcomes
        alone, row by row if need be (job_finish), and claims on its own (job_claim_gated)."""
        conn = self.conn
        states: dict[int, str] = {}
        claimed: list[ClaimedJob] = []
        with self._errors():
            if finishes and ids:
                with conn.pipeline():
                    finished = conn.execute(JOB_FINISH, finish_params(finishes, worker))
                    claim = self._claim_cursor().execute(
                        JOB_CLAIM_GATED, claim_params(ids, worker, lease_ttl)
                    )
                # Synced: the implicit transaction committed, every result is here.
                states = {r["id"]: r["state"] for r in finished.fetchall()}
                claimed = claim.fetchall()
            elif finishes:
                rows = conn.execute(JOB_FINISH, finish_params(finishes, worker)).fetchall()
                states = {r["id"]: r["state"] for r in rows}
            elif ids:
                claimed = (
                    self._claim_cursor()
                    .execute(JOB_CLAIM_GATED, claim_params(ids, worker, lease_ttl))
                    .fetchall()
                )
            # The gated claim takes nothing while any limit exists. Only a claim that won less than
            # it asked for (duplicates, a paused queue, or a limit) needs to know which.
            limited = bool(ids) and len(claimed) < len(set(ids)) and self._limits_exist()
        return CycleResult(states, claimed, limited)

    def _claim_cursor(self) -> Cursor[ClaimedJob]:
        # Rows straight into ClaimedJob: no dict per row on the hot path.
        return self.conn.cursor(row_factory=class_row(ClaimedJob))

    def _limits_exist(self) -> bool:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM limits) AS limited"  # query: limits_exist
        ).fetchone()
        return bool(row and row["limited"])
