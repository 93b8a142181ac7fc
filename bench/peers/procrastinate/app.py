"""Procrastinate as a contestant: `procrastinate --app=app.app worker`, psycopg 3 connector."""

from __future__ import annotations

import os

from peerside import abody
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_DSN"]))


@app.task(name="bench_incr")
async def bench_incr(k: str, t: float | None = None) -> None:
    await abody(k, t)


async def open() -> App:
    await app.open_async()
    return app


async def submit(_client: object, k: str, t: float | None) -> None:
    await bench_incr.defer_async(k=k, t=t)


async def submit_bulk(_client: object, k: str, n: int) -> None:
    await bench_incr.batch_defer_async(*([{"k": k, "t": None}] * n))


async def close(client: App) -> None:
    await client.close_async()
