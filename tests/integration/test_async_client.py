"""AsyncClient: the operations of Client on psycopg's async connections, and the
FastAPI example that enqueues in the request's transaction."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest
from jq_cli import AsyncClient, chain, step
from jq_cli.errors import InvalidInput, NotFound

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import wait_for


def job_count(store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


def test_async_client_submits_waits_cancels_and_retries(
    settings, store, start_worker, start_scheduler
):
    start_worker()
    start_scheduler()

    async def scenario() -> None:
        async with AsyncClient(settings) as client:
            job_id = await client.submit("t_record", {"n": 1})
            done = await client.wait(job_id, timeout=30)
            assert done["state"] == "completed"
            assert done["result"] == {"ran": True, "job": job_id}
            ids = await client.submit_many(
                [{"job_type": "t_record", "delay": "1h"}, {"job_type": "t_fail", "max_retries": 0}]
            )
            report = await client.cancel([ids[0], job_id, 999_999])
            assert report.changed == {ids[0]: "cancelled"}
            assert sorted(report.refused) == [job_id, 999_999]
            failed = await client.wait(ids[1], timeout=30)
            assert failed["state"] == "dead"
            retried = await client.retry([ids[1]])
            assert retried.changed == {ids[1]: "queued"}
            again = await client.wait(ids[1], timeout=30)
            assert again["state"] == "dead"
            assert len(again["attempt_history"]) == 2
            flow = await client.submit_workflow(chain(step("t_record"), step("t_record")))
            assert (await client.wait(flow[1], timeout=30))["state"] == "completed"
            shown = await client.show(ids[0])
            assert shown["state"] == "cancelled"
            with pytest.raises(NotFound):
                await client.get(999_999)
            with pytest.raises(InvalidInput, match="unknown job type"):
                await client.submit("no_such_type", {})

    asyncio.run(scenario())


def test_async_client_enqueues_in_the_applications_async_transaction(settings, store):
    async def scenario() -> tuple[int, int]:
        async with (
            AsyncClient(settings) as client,
            await psycopg.AsyncConnection.connect(settings.database_url) as conn,
        ):
            await client.submit("noop", {"n": 1}, connection=conn)
            await conn.rollback()
            assert job_count(store) == 0
            job_id = await client.submit("noop", {"n": 2}, connection=conn, unique_for="1h")
            again = await client.submit("noop", {"n": 2}, connection=conn, unique_for="1h")
            await conn.commit()
            return job_id, again

    job_id, again = asyncio.run(scenario())
    assert again == job_id
    assert job_count(store) == 1


def test_fastapi_example_commits_the_order_and_its_job_together(
    settings, store, start_worker, start_scheduler
):
    pytest.importorskip("fastapi")
    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from examples.fastapi_orders.app import create_app

    table = f"orders_{settings.namespace}"
    app = create_app(settings, settings.database_url, table)
    start_worker()
    start_scheduler()

    async def scenario() -> tuple[dict, int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
                ok = await http.post("/orders", json={"item": "book"})
                assert ok.status_code == 201, ok.text
                failed = await http.post("/orders?fail=true", json={"item": "lamp"})
                assert failed.status_code == 503
        async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
            cur = await conn.execute(f'SELECT count(*) FROM "{table}"')
            row = await cur.fetchone()
            await conn.execute(f'DROP TABLE "{table}"')
            await conn.commit()
        assert row is not None
        return ok.json(), row[0]

    created, orders = asyncio.run(scenario())
    assert orders == 1  # the failed request's order rolled back
    assert job_count(store) == 1  # and its job with it
    from jq_cli.client import Client

    with Client(settings) as ops:
        wait_for(
            lambda: ops.get(created["job"])["state"] == "completed", 20, what="the order's job"
        )
        assert ops.get(created["job"])["payload"] == {"order": created["order"]}
