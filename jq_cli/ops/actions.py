"""The operator actions of jq_cli.client.Client on jobs: retry, cancel and purge, by id or in
bulk by state and type. A mixin, so front ends still call one object. Each change commits with
its audit row (AuditOperations._audited), recorded as self.actor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jq_cli.errors import InvalidInput, InvalidTransition, JqError, NotFound
from jq_cli.model.states import JobState
from jq_cli.ops.audit import AuditOperations
from jq_cli.ops.core import parse_state
from jq_cli.store import JobRef

PURGEABLE = ("completed", "dead", "cancelled")
# Jobs per statement (and transaction) of a retry or purge by filter: a batch locks few rows for a
# moment and holds little memory, however many jobs match.
BULK_BATCH = 2000
Progress = Callable[[int], None]


@dataclass
class ActionReport:
    """What a multi-id action did: the ids it changed and, per id, why others were refused."""

    changed: dict[int, str] = field(default_factory=dict)
    refused: dict[int, JqError] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": [{"id": i, "state": s} for i, s in self.changed.items()],
            "refused": [
                {"id": i, "error": e.message, "kind": e.kind} for i, e in self.refused.items()
            ],
        }


AUDIT_IDS = 1000  # ids an audit row lists at most (its count is always whole)


def ids_scope(ids: Sequence[int]) -> dict[str, Any]:
    """How an action on ids is named in the audit log: one id as its target, several as a list."""
    if len(ids) == 1:
        return {"target": ids[0]}
    return {"filter": {"ids": list(ids[:AUDIT_IDS]), "given": len(ids)}}


RETRYABLE = ("retried", "dead or cancelled")
CANCELLABLE = ("cancelled", "waiting, scheduled, queued, retrying or running")


def unchanged(ids: Sequence[int], changed: Iterable[int]) -> list[int]:
    """The ids an action did not change: their states are read to say why (refusals)."""
    done = set(changed)
    return [i for i in ids if i not in done]


def refusals(
    ids: Sequence[int], states: dict[int, str], verb: str, allowed: str
) -> dict[int, JqError]:
    """Why each of `ids` (unchanged by an action) was refused, from its state (`states`; an id
    missing there does not exist)."""
    refused: dict[int, JqError] = {}
    for job_id in ids:
        if job_id not in states:
            refused[job_id] = NotFound(f"job {job_id} not found")
        else:
            refused[job_id] = InvalidTransition(
                f"job {job_id} is {states[job_id]}: only {allowed} jobs can be {verb}",
                state=states[job_id],
            )
    return refused


def parents_refusal(job_id: int, state: str, parents: Sequence[tuple[int, str]]) -> JqError:
    """Why a dead or cancelled job was not retried: parents it waits for have not settled."""
    named = ", ".join(f"{p} ({s})" for p, s in parents)
    return InvalidTransition(
        f"job {job_id} waits for parent job(s) {named}: retry or finish them first",
        state=state,
    )


def retry_report(
    ids: Sequence[int],
    rows: Sequence[JobRef],
    states: dict[int, str],
    waiting_on: dict[int, list[tuple[int, str]]] | None = None,
) -> ActionReport:
    """What a retry by ids did: the rows it changed, and the others refused by their `states`,
    or, for a dead or cancelled one, by the parents it waits for (`waiting_on`)."""
    report = ActionReport(changed={r["id"]: "queued" for r in rows})
    report.refused = refusals(unchanged(ids, report.changed), states, *RETRYABLE)
    for job_id, parents in (waiting_on or {}).items():
        if job_id in report.refused:
            report.refused[job_id] = parents_refusal(job_id, states[job_id], parents)
    return report


def cancel_report(
    ids: Sequence[int], changed: dict[int, str], states: dict[int, str]
) -> ActionReport:
    """What a cancel by ids did: {id: state after} it changed, the others refused by `states`."""
    report = ActionReport(
        changed={i: ("cancelling" if s == "running" else s) for i, s in changed.items()}
    )
    refused = refusals(unchanged(ids, changed), states, *CANCELLABLE)
    for job_id, err in list(refused.items()):
        # A running job the cancel did not change was asked already: not an error twice.
        if isinstance(err, InvalidTransition) and err.state == JobState.RUNNING:
            report.changed[job_id] = "cancelling"
            del refused[job_id]
    report.refused = refused
    return report


class ActionOperations(AuditOperations):
    def _states_of(self, ids: Sequence[int]) -> dict[int, str]:
        return self.store.job_states(ids) if ids else {}

    def retry(self, ids: Sequence[int]) -> ActionReport:
        """Dead (or cancelled) jobs back to queued with a fresh set of attempts; history kept.
        Ids in another state, or unknown, are refused (InvalidTransition, NotFound in the report).
        Raises ServiceUnavailable."""
        with self._audited("job.retry", **ids_scope(ids)) as entry:
            rows = self.store.job_retry(list(ids))
            entry.jobs = len(rows)
        self._publish_rows(rows)
        rest = unchanged(ids, [r["id"] for r in rows])
        states = self._states_of(rest)
        held = [i for i, s in states.items() if s in ("dead", "cancelled")]
        waiting_on = self.store.job_parents_unsettled(held) if held else {}
        return retry_report(ids, rows, states, waiting_on)

    def retry_matching(
        self,
        *,
        state: str = "dead",
        job_type: str | None = None,
        dry_run: bool = False,
        limit: int | None = None,
        queue: str | None = None,
        on_progress: Progress | None = None,
    ) -> int:
        """Retry every job in `state` (dead or cancelled), optionally of one type or queue, at most
        `limit`. Works in batches of BULK_BATCH, each its own transaction (with the growing count
        of its one audit row), so memory and lock time stay bounded whatever matches;
        `on_progress(done)` is called after each. Returns how many were (or, with dry_run, would
        be) retried. Raises InvalidInput, ServiceUnavailable."""
        from jq_cli.model.jobspec import check_name

        parsed = parse_state(state)
        if parsed not in (JobState.DEAD, JobState.CANCELLED):
            raise InvalidInput(f"only dead or cancelled jobs can be retried, not {state}")
        if job_type:
            check_name(job_type, "job type")
        if queue:
            check_name(queue, "queue")
        narrow = {"queue": queue}
        if dry_run:
            count = self.store.job_count_matching(parsed.value, job_type, None, **narrow)
            return count if limit is None else min(count, limit)
        done = 0
        entry = None  # one audit row for the whole action, its count grown batch by batch
        while limit is None or done < limit:
            want = BULK_BATCH if limit is None else min(BULK_BATCH, limit - done)
            with self._audited(
                "job.retry",
                filter={"state": parsed.value, "type": job_type, "queue": queue},
                entry=entry,
            ) as entry:
                rows = self.store.job_retry_batch(parsed.value, job_type, want, **narrow)
                entry.jobs += len(rows)
            self._publish_rows(rows)
            done += len(rows)
            if on_progress is not None and rows:
                on_progress(done)
            if len(rows) < want:
                break
        return done

    def cancel(self, ids: Sequence[int]) -> ActionReport:
        """Cancel jobs: one not started ends cancelled and never runs; a running one is asked to stop
        (its handler sees ctx.cancelled) and ends cancelled, never retried. Raises
        ServiceUnavailable."""
        with self._audited("job.cancel", **ids_scope(ids)) as entry:
            changed = self.store.job_cancel(list(ids))
            entry.jobs = len(changed)
        return cancel_report(ids, changed, self._states_of(unchanged(ids, changed)))

    def purge_count(self, *, state: str, **filters: Any) -> tuple[int, datetime]:
        """How many jobs purge(state=..., **filters) would delete now, and the database time of
        the count: pass it to purge as `finished_by`, so that a job finishing between the
        question and the answer is not deleted unasked (the count confirmed is an upper bound of
        the count deleted; less only if some were retried meanwhile). Raises InvalidInput,
        ServiceUnavailable."""
        cutoff = self.store.now()
        filters.pop("dry_run", None)
        return self.purge(state=state, dry_run=True, finished_by=cutoff, **filters), cutoff

    def purge(
        self,
        *,
        state: str,
        older_than: float | None = None,
        job_type: str | None = None,
        dry_run: bool = False,
        queue: str | None = None,
        priority: str | None = None,
        job_id: int | None = None,
        on_progress: Progress | None = None,
        finished_by: datetime | None = None,
        at_most: int | None = None,
    ) -> int:
        """Delete terminal jobs (with their attempts) in `state`; never an active one. `queue`,
        `priority` and `job_id` narrow it further (jq top purges exactly what its filter shows);
        `finished_by` keeps to the jobs finished by then and `at_most` deletes no more than that
        (purge_count's cutoff and count: what an operator confirmed).
        Works in batches of BULK_BATCH along an index (state, type, finished age), each its own
        transaction with the growing count of its one audit row; `on_progress(done)` is called
        after each. Returns how many were (or, with dry_run, would be) deleted. Raises
        InvalidInput, ServiceUnavailable."""
        from jq_cli.model.jobspec import check_name, parse_priority

        state = state.lower()
        if state not in PURGEABLE:
            raise InvalidInput(
                f"purge takes a terminal state ({', '.join(PURGEABLE)}), not {state!r}"
            )
        if job_type:
            check_name(job_type, "job type")
        if queue:
            check_name(queue, "queue")
        narrow = {
            "queue": queue,
            "priority": parse_priority(priority).amqp if priority else None,
            "job_id": job_id,
            "finished_by": finished_by,
        }
        if dry_run:
            return self.store.job_count_matching(state, job_type, older_than, **narrow)
        deleted = 0
        scope = {
            "state": state,
            "type": job_type,
            "queue": queue,
            "priority": priority,
            "id": job_id,
            "older_than": older_than,
        }
        entry = None  # one audit row for the whole purge, its count grown batch by batch
        while True:
            batch = BULK_BATCH if at_most is None else min(BULK_BATCH, at_most - deleted)
            if batch <= 0:
                return deleted
            with self._audited("job.purge", filter=scope, entry=entry) as entry:
                n = self.store.job_purge_batch(state, job_type, older_than, batch, **narrow)
                deleted += n
                entry.jobs = deleted
            if on_progress is not None and n:
                on_progress(deleted)
            if n < batch:
                return deleted
