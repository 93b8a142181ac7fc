"""Operator actions in jq_cli.client.Client: retry a dead job with a corrected
payload, replay a finished job as a new linked one, cancel by filter, and a job's timeline.
Each change commits with its audit row."""

from __future__ import annotations

from typing import Any

from jq_cli.errors import InvalidInput, InvalidTransition, NotFound
from jq_cli.model.states import JobState
from jq_cli.model.timeline import job_timeline
from jq_cli.ops.actions import parents_refusal
from jq_cli.ops.audit import AuditOperations
from jq_cli.ops.core import parse_state

CANCELLABLE = (JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING, JobState.RETRYING)
FILTER_BATCH = 5000  # ids per statement of an action by filter
FINISHED = ("completed", "dead", "cancelled")


class EditOperations(AuditOperations):
    def select(
        self,
        *,
        state: str,
        allowed: tuple[JobState, ...],
        job_type: str | None = None,
        queue: str | None = None,
        priority: str | None = None,
        older_than: float | None = None,
        limit: int | None = None,
    ) -> list[int]:
        """The ids an action by filter works on. Raises InvalidInput for a bad filter or a state
        the action does not take."""
        from jq_cli.model.jobspec import check_name, parse_priority

        parsed = parse_state(state)
        if parsed not in allowed:
            raise InvalidInput(
                f"this action takes {', '.join(s.value for s in allowed)} jobs, not {parsed.value}"
            )
        if job_type:
            check_name(job_type, "job type")
        if queue:
            check_name(queue, "queue")
        prio = parse_priority(priority).amqp if priority else None
        return self.store.job_ids_filtered(
            states=[parsed.value],
            job_type=job_type,
            queue=queue,
            priority=prio,
            older_than=older_than,
            limit=limit,
        )

    def retry_edited(self, job_id: int, payload: dict[str, Any]) -> dict[str, Any]:
        """Retry a dead job with a new payload, validated as a submit's would be (its type's
        handler, the size cap). Raises NotFound, InvalidTransition, InvalidInput."""
        from jq_cli.model.jobspec import JobRequest

        job = self.store.job_get(job_id)
        if job["state"] != "dead":
            raise InvalidTransition(
                f"job {job_id} is {job['state']}: only a dead job is retried with a new payload",
                state=job["state"],
            )
        request = JobRequest.parse({"job_type": job["job_type"], "payload": payload})
        text = self._prepare(request).payload_json  # checked and encoded as a submit's payload
        with self._audited("job.edit", target=job_id) as entry:
            row = self.store.job_retry_edited(job_id, text)
            if row is None:
                parents = self.store.job_parents_unsettled([job_id]).get(job_id)
                if parents:
                    raise parents_refusal(job_id, "dead", parents)
                raise InvalidTransition(f"job {job_id} is no longer dead", state=None)
            entry.jobs = 1
            entry.detail = {"retried": True, "old_payload": job["payload"]}
        self._publish_rows([row])
        return {"id": job_id, "state": "queued", "payload": request.payload}

    def replay(self, job_id: int) -> int:
        """Run a finished job again as a new job naming it (replay_of); returns the new id.
        Raises NotFound, InvalidTransition."""
        with self._audited("job.replay", target=job_id) as entry:
            row = self.store.job_replay(job_id)
            if row is None:
                states = self.store.job_states([job_id])
                if job_id not in states:
                    raise NotFound(f"job {job_id} not found")
                raise InvalidTransition(
                    f"job {job_id} is {states[job_id]}: only a finished job "
                    f"({', '.join(FINISHED)}) can be replayed",
                    state=states[job_id],
                )
            entry.jobs = 1
            entry.detail = {"replay": row["id"]}
        self._publish_rows([row])
        return row["id"]

    def cancel_matching(
        self,
        *,
        state: str,
        job_type: str | None = None,
        queue: str | None = None,
        dry_run: bool = False,
    ) -> list[int]:
        """Cancel every job in `state` (scheduled, queued, running or retrying) of the filter;
        returns the ids cancelled (or, with dry_run, that would be). Raises InvalidInput."""
        ids = self.select(state=state, allowed=CANCELLABLE, job_type=job_type, queue=queue)
        if dry_run or not ids:
            return ids
        done: list[int] = []
        entry = None  # one audit row for the whole action
        scope = {"state": state.lower(), "type": job_type, "queue": queue}
        for start in range(0, len(ids), FILTER_BATCH):
            with self._audited("job.cancel", filter=scope, entry=entry) as entry:
                changed = self.store.job_cancel(ids[start : start + FILTER_BATCH])
                entry.jobs += len(changed)
            done.extend(changed)
        return done

    def replays(self, job_id: int) -> list[int]:
        return self.store.job_replays_of(job_id)

    def timeline(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The job's timeline (jq_cli.model.timeline): its timestamps, attempts and the operator
        actions on it by id."""
        return job_timeline(job, [dict(a) for a in self.store.audit_for_target(str(job["id"]))])
