"""The schedule operations of jq_cli.client.Client (cron schedules: add, list, show, edit,
pause, resume, remove, run now, apply a file). A mixin, so front ends still call one object."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from jq_cli.errors import Conflict, InvalidInput, NotFound
from jq_cli.model.states import PRIORITY_NAMES
from jq_cli.ops.audit import AuditOperations
from jq_cli.store import ScheduleRow

if TYPE_CHECKING:
    from jq_cli.model.schedulespec import ScheduleSpec


class ScheduleOperations(AuditOperations):
    def schedule_add(
        self,
        name: str,
        job_type: str,
        cron: str,
        *,
        payload: dict[str, Any] | None = None,
        priority: str = "medium",
        max_retries: int | None = None,
        queue: str = "default",
        timezone: str = "UTC",
        misfire: str = "once",
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Create a schedule; its first tick is the first fire time after now (the database clock).
        Raises InvalidInput (bad field, unknown type, a name that exists), ServiceUnavailable."""
        from jq_cli.model.schedulespec import ScheduleSpec

        spec = ScheduleSpec.parse(
            {
                "name": name,
                "job_type": job_type,
                "cron": cron,
                "timezone": timezone,
                "payload": payload,
                "priority": priority,
                "max_retries": max_retries,
                "queue": queue,
                "misfire": misfire,
                "enabled": enabled,
            }
        )
        row = self._schedule_row(spec)
        row["next_fire_at"] = self._schedule_next(spec.cron, spec.timezone)
        with self._audited(
            "schedule.add", target=name, filter={"job_type": job_type, "cron": cron}
        ):
            created = self.store.schedule_insert(row)
            if created is None:
                raise Conflict(f"schedule {name} already exists")
        return _present_schedule(created)

    def schedule_list(self) -> list[dict[str, Any]]:
        """Every schedule, by name."""
        return [_present_schedule(r) for r in self.store.schedule_list()]

    def schedule_get(self, name: str, next_n: int = 5) -> dict[str, Any]:
        """The schedule with its next `next_n` fire times ("next_fire_times") and its most recent jobs
        ("recent_jobs": id, state, created_at, fire_time; run-now jobs have no fire time).
        Raises NotFound, InvalidInput."""
        from jq_cli.model import cron

        if not 0 <= next_n <= 100:
            raise InvalidInput(f"next must be between 0 and 100, got {next_n}")
        schedule = _present_schedule(self._schedule(name))
        now = self.store.now()
        times: list[datetime] = []
        if next_n:
            if schedule["enabled"]:
                # A due tick (no scheduler running) is still the next one to fire.
                first = schedule["next_fire_at"]
                times = [
                    first,
                    *cron.fire_times(
                        schedule["cron"], schedule["timezone"], max(first, now), next_n - 1
                    ),
                ]
            else:  # what it would do if resumed now
                times = cron.fire_times(schedule["cron"], schedule["timezone"], now, next_n)
        schedule["next_fire_times"] = times
        schedule["recent_jobs"] = list(self.store.schedule_jobs_recent(name, 10))
        return schedule

    def schedule_edit(self, name: str, **changes: Any) -> dict[str, Any]:
        """Change some fields of a schedule (the keywords of schedule_add). A new cron or zone
        restarts its timer from now. Raises NotFound, InvalidInput."""
        from jq_cli.model.schedulespec import EDITABLE, ScheduleSpec

        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise InvalidInput(
                f"cannot edit {', '.join(unknown)} (editable: {', '.join(EDITABLE)})"
            )
        current = self._schedule(name)
        merged = {
            k: v for k, v in _present_schedule(current).items() if k in EDITABLE or k == "name"
        }
        merged.update({k: v for k, v in changes.items() if v is not None})  # None: unchanged
        spec = ScheduleSpec.parse(merged)
        update = self._schedule_changes(current, spec, manage_enabled="enabled" in changes)
        if not update:
            return _present_schedule(current)
        with self._audited("schedule.edit", target=name, filter=update):
            row = self.store.schedule_update(name, update)
            if row is None:
                raise NotFound(f"schedule {name} not found")
        return _present_schedule(row)

    def schedule_set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Pause or resume. Resuming restarts the timer from now: the ticks of a pause are not
        misfires and fire nothing. Raises NotFound."""
        current = self._schedule(name)
        if current["enabled"] == enabled:
            return _present_schedule(current)
        update: dict[str, Any] = {"enabled": enabled}
        if enabled:
            update["next_fire_at"] = self._schedule_next(current["cron"], current["timezone"])
        with self._audited("schedule.enable" if enabled else "schedule.disable", target=name):
            row = self.store.schedule_update(name, update)
            if row is None:
                raise NotFound(f"schedule {name} not found")
        return _present_schedule(row)

    def schedule_remove(self, name: str) -> None:
        """Delete a schedule; the jobs it created stay. Raises NotFound."""
        with self._audited("schedule.remove", target=name):
            if not self.store.schedule_delete(name):
                raise NotFound(f"schedule {name} not found")

    def schedule_run_now(self, name: str) -> int:
        """Create one job from the schedule now, outside its ticks; returns its id. Raises NotFound."""
        with self._audited("schedule.run_now", target=name) as entry:
            row = self.store.schedule_job_insert(name, self.settings.default_max_retries)
            if row is None:
                raise NotFound(f"schedule {name} not found")
            entry.jobs = 1
            entry.detail = {"job": row["id"]}
        self._publish_rows([row])
        return row["id"]

    def schedule_apply(
        self, specs: list[dict[str, Any]], *, prune: bool = False, dry_run: bool = False
    ) -> dict[str, list[str]]:
        """Make the schedules match `specs` (dicts of schedule_add's fields and name): add the
        missing, update the different, and with `prune` remove the undeclared, in one transaction.
        A spec without `enabled` leaves a paused schedule paused. Every spec is validated before
        anything is written. Returns the names added, updated, removed and unchanged.
        Raises InvalidInput."""
        from jq_cli.model.schedulespec import ScheduleSpec

        parsed = []
        for number, data in enumerate(specs, 1):
            if not isinstance(data, dict):
                raise InvalidInput(f"schedule {number}: must be a table of fields")
            label = f"schedule {number}" + (
                f" ({data['name']})" if isinstance(data.get("name"), str) else ""
            )
            spec = ScheduleSpec.parse(data, label)
            try:
                row = self._schedule_row(spec)
            except InvalidInput as exc:
                raise InvalidInput(f"{label}: {exc.message}") from None
            parsed.append((spec, row, "enabled" in data))
        names = [spec.name for spec, _, _ in parsed]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidInput(f"schedule {twice[0]} is declared more than once")
        existing = {r["name"]: r for r in self.store.schedule_list()}
        result: dict[str, list[str]] = {"added": [], "updated": [], "removed": [], "unchanged": []}
        inserts: list[dict[str, Any]] = []
        updates: list[tuple[str, dict[str, Any]]] = []
        for spec, row, manage_enabled in parsed:
            current = existing.get(spec.name)
            if current is None:
                row["next_fire_at"] = self._schedule_next(spec.cron, spec.timezone)
                inserts.append(row)
                result["added"].append(spec.name)
                continue
            change = self._schedule_changes(current, spec, manage_enabled=manage_enabled)
            if change:
                updates.append((spec.name, change))
                result["updated"].append(spec.name)
            else:
                result["unchanged"].append(spec.name)
        if prune:
            result["removed"] = sorted(set(existing) - set(names))
        if not dry_run and (inserts or updates or result["removed"]):
            changed = {k: v for k, v in result.items() if k != "unchanged" and v}
            with self._audited("schedule.apply", filter={"prune": prune}) as entry:
                entry.detail = changed
                self.store.schedule_apply(inserts, updates, result["removed"])
        return result

    def _schedule(self, name: str) -> ScheduleRow:
        row = self.store.schedule_get(name)
        if row is None:
            raise NotFound(f"schedule {name} not found")
        return row

    def _schedule_next(self, expr: str, tz: str) -> datetime:
        from jq_cli.model import cron

        return cron.next_fire(expr, tz, self.store.now())

    def _schedule_row(self, spec: ScheduleSpec) -> dict[str, Any]:
        """The row to store for a validated ScheduleSpec, after the checks a submit of its job would
        pass (a known type, a payload its handler accepts). Raises InvalidInput."""
        from jq_cli.model.jobspec import JobRequest

        request = JobRequest.parse(
            {
                "job_type": spec.job_type,
                "payload": spec.payload,
                "priority": spec.priority,
                "max_retries": spec.max_retries,
                "queue": spec.queue,
            }
        )
        # The one preparation of a job (ops/prepare.py): its fired jobs are held to a submit's rules.
        new = self._prepare(request)
        return {
            "name": spec.name,
            "job_type": spec.job_type,
            "cron": spec.cron,
            "timezone": spec.timezone,
            "payload": new.payload_json,
            "priority": new.priority,
            "max_retries": spec.max_retries,
            "queue": spec.queue,
            "misfire": spec.misfire,
            "enabled": spec.enabled,
        }

    def _schedule_changes(
        self, current: ScheduleRow, spec: ScheduleSpec, *, manage_enabled: bool
    ) -> dict[str, Any]:
        """The columns to set so that the stored `current` row matches `spec` (validated here)."""
        from jq_cli.model.schedulespec import EDITABLE  # croniter: loaded only when used

        row = self._schedule_row(spec)
        wanted = {**row, "payload": spec.payload}
        fields = [f for f in EDITABLE if manage_enabled or f != "enabled"]
        stored = cast(dict[str, Any], current)
        change = {f: row[f] for f in fields if wanted[f] != stored[f]}
        restart = "cron" in change or "timezone" in change or (change.get("enabled") is True)
        if restart and (spec.enabled if manage_enabled else current["enabled"]):
            change["next_fire_at"] = self._schedule_next(spec.cron, spec.timezone)
        return change


def _present_schedule(row: ScheduleRow) -> dict[str, Any]:
    """A schedule row as front ends show it: priority by name, only the documented keys."""
    from jq_cli.model.schedulespec import FIELDS  # croniter: loaded only when used

    keys = (
        *FIELDS,
        "last_fire_at",
        "next_fire_at",
        "created_at",
        "updated_at",
    )
    stored = cast(dict[str, Any], row)
    out: dict[str, Any] = {k: stored.get(k) for k in keys}
    out["priority"] = PRIORITY_NAMES.get(out["priority"], out["priority"])
    return out
