"""A job's timeline for `jq show`: derived from what is already written (the job's timestamps,
its attempts, the audit log's actions on it), so the hot path writes nothing more for it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# What the job became after an attempt ended with this outcome, when another attempt followed.
AFTER = {
    "failed": "retrying",
    "timeout": "retrying",
    "lost": "queued (rescued)",
    "interrupted": "queued (handed back)",
    "snoozed": "scheduled (snoozed)",
}


def job_timeline(job: dict[str, Any], actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events oldest first, each {"at", "state", "event"}: the submit, every attempt's start and
    end, every operator action on the job by id (who did it), and the final state."""
    events: list[tuple[datetime, int, str, str]] = []
    first = "queued"
    attempts = job.get("attempt_history") or []
    run_at = job.get("run_at")
    if run_at is not None and not attempts and run_at > job["created_at"]:
        first = "scheduled"
    origin = f" (a replay of job {job['replay_of']})" if job.get("replay_of") else ""
    events.append((job["created_at"], 0, first, f"submitted{origin}"))
    revivals = [act["at"] for act in actions if act["action"] in ("job.retry", "job.edit")]
    for i, a in enumerate(attempts):
        events.append((a["started_at"], 1, "running", f"attempt {a['number']} on {a['worker']}"))
        if a["finished_at"] is not None and a["outcome"] != "running":
            error = f": {a['error']}" if a.get("error") else ""
            after = AFTER.get(a["outcome"], a["outcome"])
            following = attempts[i + 1]["started_at"] if i + 1 < len(attempts) else None
            if after == "retrying" and any(
                a["finished_at"] <= at and (following is None or at <= following) for at in revivals
            ):
                after = "dead"  # an operator's retry brought it back: it had died
            events.append(
                (a["finished_at"], 2, after, f"attempt {a['number']} {a['outcome']}{error}")
            )
    for act in actions:
        who = f"{act['actor']}@{act['host']}" if act.get("host") else act["actor"]
        verb = act["action"].split(".", 1)[1]
        events.append((act["at"], 3, "", f"{verb} by {who} ({act['actor_kind']})"))
    finished = job.get("finished_at")
    if finished is not None and job["state"] in ("completed", "dead", "cancelled"):
        events.append((finished, 4, job["state"], job["state"]))
    elif job["state"] in ("scheduled", "retrying") and run_at is not None:
        events.append((run_at, 4, job["state"], f"due (run_at), now {job['state']}"))
    events.sort(key=lambda e: (e[0], e[1]))
    # The last attempt's end and the final state are the same moment: keep the final state's.
    out: list[dict[str, Any]] = []
    for at, _, state, text in events:
        out.append({"at": at, "state": state, "event": text})
    return out
