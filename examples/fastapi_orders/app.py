"""A small FastAPI application that enqueues a jq job in the request's own transaction: an order
row and the job that ships it commit together, or neither exists.

    JQ_DATABASE_URL=postgresql://localhost/jq uvicorn examples.fastapi_orders.app:app

POST /orders {"item": "book"} inserts the order and submits `ship_order` (here the built-in `noop`
stands in for it) through AsyncClient with the request's AsyncConnection; a failure after the
submit (POST /orders?fail=true) rolls both back. The scheduler's doorbell publishes the job as soon
as the transaction commits.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's Depends(transaction), a local
# of create_app, from evaluated annotations.

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, HTTPException
from jq_cli import AsyncClient
from jq_cli.config import Settings
from psycopg import sql
from pydantic import BaseModel


class Order(BaseModel):
    item: str


def create_app(
    settings: Settings | None = None,
    database_url: str | None = None,
    table: str = "orders",
    job_type: str = "noop",
) -> FastAPI:
    """The application; tests pass their own settings, database and table name."""
    url = database_url or os.environ.get("APP_DATABASE_URL", "postgresql://localhost/jq")
    orders = sql.Identifier(table)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (id serial PRIMARY KEY, item text)").format(
                    orders
                )
            )
        app.state.jq = AsyncClient(settings)
        yield
        await app.state.jq.close()

    app = FastAPI(lifespan=lifespan)

    async def transaction() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        # One connection and one transaction per request: committed when the handler returns,
        # rolled back when it raises.
        async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
            yield conn

    @app.post("/orders", status_code=201)
    async def create_order(
        order: Order,
        conn: Annotated[psycopg.AsyncConnection[Any], Depends(transaction)],
        fail: bool = False,
    ) -> dict[str, int]:
        cur = await conn.execute(
            sql.SQL("INSERT INTO {} (item) VALUES (%s) RETURNING id").format(orders), (order.item,)
        )
        row = await cur.fetchone()
        assert row is not None
        job_id = await app.state.jq.submit(job_type, {"order": row[0]}, connection=conn)
        if fail:
            raise HTTPException(503, "payment service unavailable: the order and its job roll back")
        return {"order": row[0], "job": job_id}

    return app


# Nothing connects at import: the lifespan opens the client when the server starts.
app = create_app()
