"""pgqueuer as a contestant: `pgq run app:main` (its documented factory), asyncpg driver."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from peerside import abody
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The factory `pgq run` takes: an async context manager that yields the PgQueuer."""
    connection = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("bench_incr")
    async def bench_incr(job: Job) -> None:
        payload = json.loads(job.payload)
        await abody(payload["k"], payload.get("t"))

    try:
        yield pgq
    finally:
        await connection.close()


async def open() -> tuple:
    connection = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    return connection, Queries(AsyncpgDriver(connection))


async def submit(client: tuple, k: str, t: float | None) -> None:
    await client[1].enqueue("bench_incr", json.dumps({"k": k, "t": t}).encode())


async def submit_bulk(client: tuple, k: str, n: int) -> None:
    payload = json.dumps({"k": k}).encode()
    await client[1].enqueue(["bench_incr"] * n, [payload] * n, [0] * n)


async def close(client: tuple) -> None:
    await client[0].close()
