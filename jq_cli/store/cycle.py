"""The worker's cycle in one round trip and one commit: the outcomes it holds and the deliveries it
claims go to PostgreSQL together (psycopg's pipeline mode, one transaction), so a busy worker pays
one network wait and one WAL flush per batch instead of one for its outcomes, one for its gates and
one for its claim."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
        with self._errors():
            with conn.pipeline(), conn.transaction():
                limits = (
                    conn.execute(
                        "SELECT EXISTS (SELECT 1 FROM limits) AS limited"
                    )  # query: limits_exist
                    if ids
                    else None
                )
                finished = (
                    conn.execute(JOB_FINISH, finish_params(finishes, worker)) if finishes else None
                )
                claim = (
                    # Rows straight into ClaimedJob: no dict per row on the hot path.
                    conn.cursor(row_factory=class_row(ClaimedJob)).execute(
                        JOB_CLAIM_GATED, claim_params(ids, worker, lease_ttl)
                    )
                    if ids
                    else None
                )
            # The pipeline is synced and the transaction committed: every result is here.
            limited = limits is not None and bool((limits.fetchone() or {}).get("limited"))
            states = {r["id"]: r["state"] for r in finished.fetchall()} if finished else {}
            claimed = claim.fetchall() if claim else []
        return CycleResult(states, claimed, limited)
