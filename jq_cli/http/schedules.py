"""Routes for cron schedules: each one call into jq_cli.client (schedule_add, _list, _get, _edit,
_remove)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from jq_cli.http.bodies import ScheduleChange, ScheduleCreate
from jq_cli.http.jobs import Pool

router = APIRouter(prefix="/api/v1/scheduled-jobs", tags=["scheduled-jobs"])
Name = Annotated[str, Path(max_length=200, description="The schedule's name.")]


@router.get("", summary="Every schedule")
def list_schedules(pool: Pool) -> list[dict[str, Any]]:
    with pool.borrow() as ops:
        return ops.schedule_list()


@router.post("", status_code=201, summary="Add a schedule")
def add_schedule(body: ScheduleCreate, pool: Pool, response: Response) -> dict[str, Any]:
    """Takes `cron`, or `cron_expression` as the older service's clients send it."""
    fields = body.model_dump()
    name, job_type, cron = fields.pop("name"), fields.pop("job_type"), fields.pop("cron")
    with pool.borrow() as ops:
        schedule = ops.schedule_add(name, job_type, cron, **fields)
    response.headers["Location"] = f"/api/v1/scheduled-jobs/{name}"
    return schedule


@router.get("/{name}", summary="A schedule and its next fire times")
def get_schedule(
    name: Name,
    pool: Pool,
    next_n: Annotated[
        int, Query(alias="next", ge=0, le=100, description="How many next fire times to list.")
    ] = 5,
) -> dict[str, Any]:
    with pool.borrow() as ops:
        return ops.schedule_get(name, next_n=next_n)


@router.patch("/{name}", summary="Change a schedule")
def edit_schedule(name: Name, body: ScheduleChange, pool: Pool) -> dict[str, Any]:
    """Only the fields given change (an empty body changes nothing); `enabled` pauses or resumes
    it, and a new cron or zone restarts its timer from now."""
    with pool.borrow() as ops:
        return ops.schedule_edit(name, **body.model_dump(exclude_unset=True))


@router.delete("/{name}", status_code=204, summary="Remove a schedule")
def remove_schedule(name: Name, pool: Pool) -> Response:
    with pool.borrow() as ops:
        ops.schedule_remove(name)
    return Response(status_code=204)
