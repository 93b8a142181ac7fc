"""Routes for jobs, the dead-letter queue and stats: each one call into jq_cli.client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from jq_cli.client import ActionReport
from jq_cli.errors import InvalidInput, UnknownParameter, did_you_mean
from jq_cli.http.bodies import BulkSubmit, DeadLetterRetry
from jq_cli.http.pool import ActingPool
from jq_cli.model.audit import Actor
from jq_cli.model.durations import parse_duration
from jq_cli.model.jobspec import JobRequest

router = APIRouter(prefix="/api/v1", tags=["jobs"])
ANY_OF = "repeat it or separate values with commas for any of them."
MAX_WINDOW = 10_000  # what ops.list_jobs returns at most: offset + limit stay within it


def pool(request: Request) -> ActingPool:
    """The pool of Client acting as the request's API key (by name) for the audit log, once
    the query holds only parameters the route declares (every route borrows from the pool, so
    every route refuses an unknown parameter)."""
    refuse_unknown_query(request)
    client = request.client.host if request.client else None
    return ActingPool(
        request.app.state.pool, Actor.http(getattr(request.state, "api_key_name", None), client)
    )


def refuse_unknown_query(request: Request) -> None:
    """Raise UnknownParameter (400) naming every query parameter the route does not declare."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    known: set[str] = set()
    todo = [dependant]
    while todo:  # the route's own query parameters and those of its dependencies
        current = todo.pop()
        known.update(p.alias for p in current.query_params)
        todo.extend(current.dependencies)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        listed = ", ".join(unknown)
        raise UnknownParameter(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {listed}"
            + (did_you_mean(unknown[0], known) if len(unknown) == 1 else "")
            + (
                f" (this endpoint takes: {', '.join(sorted(known))})"
                if known
                else " (this endpoint takes none)"
            )
        )


Pool = Annotated[ActingPool, Depends(pool)]
JobIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The job's id.")]


@router.post("/jobs", status_code=201, summary="Submit a job")
def submit_job(
    job: JobRequest,
    pool: Pool,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            description="The job's idempotency key: a second "
            "submit with it returns the first job (200)."
        ),
    ] = None,
) -> dict[str, Any]:
    """Submit one job; 201 with the job once it is committed, or 200 with the existing job when
    its idempotency key was used before."""
    if idempotency_key is not None:
        if job.idempotency_key is not None and job.idempotency_key != idempotency_key:
            raise InvalidInput("the Idempotency-Key header and the body's idempotency_key differ")
        job = JobRequest.parse(
            {**job.model_dump(exclude_unset=True), "idempotency_key": idempotency_key}
        )
    with pool.borrow() as ops:
        inserted = ops.submit_request(job)
        created = ops.get(inserted.id)
    if not inserted.created:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/jobs/{inserted.id}"
    return created


@router.post("/jobs/bulk", status_code=201, summary="Submit many jobs in one transaction")
def submit_jobs(body: BulkSubmit, pool: Pool, response: Response) -> dict[str, Any]:
    """All the jobs or none; a bad job rejects the request, naming it (`job N`, from 1)."""
    with pool.borrow() as ops:
        inserted = ops.submit_many_detailed(body.jobs)
    created = sum(i.created for i in inserted)
    if not created:
        response.status_code = 200
    return {"count": len(inserted), "created": created, "ids": [i.id for i in inserted]}


def _page(jobs: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    page = jobs[offset : offset + limit]
    more = len(jobs) > offset + limit
    return {
        "jobs": page,
        "count": len(page),
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if more else None,
        "next_before_id": page[-1]["id"] if more and page else None,
    }


def _window(offset: int, limit: int, before_id: int | None = None) -> int:
    if offset and before_id is not None:
        raise InvalidInput("page with offset or with before_id, not both")
    if offset and offset + limit > MAX_WINDOW:
        raise InvalidInput(
            f"offset + limit must be at most {MAX_WINDOW}: page with before_id instead"
        )
    # One row beyond the page tells whether there is a next one.
    return min(offset + limit + 1, MAX_WINDOW) if 1 <= limit <= MAX_WINDOW else limit


@router.get("/jobs", summary="List jobs, newest first")
def list_jobs(
    pool: Pool,
    state: Annotated[
        list[str] | None,
        Query(
            description="scheduled, queued, running, retrying, completed, dead, cancelled; "
            + ANY_OF
        ),
    ] = None,
    job_type: Annotated[
        list[str] | None, Query(alias="type", description="Only jobs of this type; " + ANY_OF)
    ] = None,
    priority: Annotated[
        list[str] | None, Query(description="high, medium or low; " + ANY_OF)
    ] = None,
    queue: Annotated[list[str] | None, Query(description="Only this queue; " + ANY_OF)] = None,
    since: Annotated[
        str | None, Query(description="Only jobs created within this duration, e.g. 1h.")
    ] = None,
    limit: Annotated[int, Query(description="Page size, 1 to 10000.")] = 50,
    offset: Annotated[
        int, Query(ge=0, le=MAX_WINDOW, description="Jobs to skip (see next_offset).")
    ] = 0,
    before_id: Annotated[
        int | None,
        Query(
            ge=1,
            description="Only jobs older than this id (see "
            "next_before_id): pages stay stable while jobs arrive.",
        ),
    ] = None,
) -> dict[str, Any]:
    """The filters of `jq list`. Page with `before_id` and the `next_before_id` of each answer
    (stable under new submits), or with `offset` and `next_offset`."""
    since_s = parse_duration(since, "since") if since else None
    with pool.borrow() as ops:
        jobs = ops.list_jobs(
            state=state,
            job_type=job_type,
            priority=priority,
            queue=queue,
            since=since_s,
            limit=_window(offset, limit, before_id),
            before_id=before_id,
        )
    return _page(jobs, offset, limit)


@router.get("/jobs/{job_id}", summary="A job with every attempt")
def get_job(job_id: JobIdPath, pool: Pool) -> dict[str, Any]:
    with pool.borrow() as ops:
        return ops.get(job_id)


def _one(report: ActionReport, job_id: int) -> dict[str, Any]:
    if job_id in report.refused:
        raise report.refused[job_id]
    return {"id": job_id, "state": report.changed[job_id]}


@router.post("/jobs/{job_id}/retry", summary="Retry a dead or cancelled job")
def retry_job(job_id: JobIdPath, pool: Pool) -> dict[str, Any]:
    """Back to queued with a fresh set of attempts (its history is kept). 409 if the job is in
    another state."""
    with pool.borrow() as ops:
        return _one(ops.retry([job_id]), job_id)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job")
def cancel_job(job_id: JobIdPath, pool: Pool) -> dict[str, Any]:
    """A job not started ends `cancelled`; a running one is asked to stop (`cancelling`). 409 for a
    job that already ended."""
    with pool.borrow() as ops:
        return _one(ops.cancel([job_id]), job_id)


@router.get("/stats", summary="Counts by state, priority and queue; live workers")
def stats(pool: Pool) -> dict[str, Any]:
    with pool.borrow() as ops:
        return ops.stats()


@router.get("/dead-letter", tags=["dead-letter"], summary="Dead jobs, newest first")
def dead_letters(
    pool: Pool,
    job_type: Annotated[
        list[str] | None, Query(alias="type", description="Only jobs of this type; " + ANY_OF)
    ] = None,
    limit: Annotated[int, Query(description="Page size, 1 to 10000.")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_WINDOW)] = 0,
    before_id: Annotated[
        int | None, Query(ge=1, description="Only jobs older than this id.")
    ] = None,
) -> dict[str, Any]:
    with pool.borrow() as ops:
        jobs = ops.dead_letters(
            job_type=job_type, limit=_window(offset, limit, before_id), before_id=before_id
        )
    return _page(jobs, offset, limit)


@router.post("/dead-letter/retry", tags=["dead-letter"], summary="Retry dead jobs")
def retry_dead(body: DeadLetterRetry, pool: Pool) -> dict[str, Any]:
    """`{"ids": [...]}` retries those (each refused one is listed with its reason), `{"all": true}`
    every dead job (optionally of one `job_type`; `dry_run` lists them and changes nothing)."""
    if bool(body.ids) == body.all:
        raise InvalidInput('give `ids` or `"all": true`, not both and not neither')
    if body.ids and (body.job_type or body.dry_run):
        raise InvalidInput('`job_type` and `dry_run` go with `"all": true`, not with `ids`')
    with pool.borrow() as ops:
        if body.ids:
            report = ops.retry(body.ids)
            return {"dry_run": False, "count": len(report.changed), **report.as_dict()}
        # Counted, not listed: a retry of every dead job runs in bounded batches and memory.
        count = ops.retry_matching(state="dead", job_type=body.job_type, dry_run=body.dry_run)
    return {"dry_run": body.dry_run, "count": count, "changed": [], "refused": []}
