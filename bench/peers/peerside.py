"""What every contestant's venv runs besides its own library: the job body and the enqueue driver.

This file is imported inside the peers' virtual environments (and jq's), never by the bench
itself, so it depends on nothing but the standard library and redis-py.

The job body is the same for all: one Redis INCR on the run's key (how the bench counts
completions), and for latency jobs, first an RPUSH of how long after its submit the job started.
Both go in one round trip.

The driver: `python -m peerside one|bulk|rate N KEY [CHUNK|RATE]` imports the contestant's
`app` module, submits N jobs through the peer's own client API and prints one JSON line.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time

_clients: dict[int, object] = {}  # per process: workers fork after import


def _redis():
    import redis

    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return client


def body(k: str, t: float | None = None) -> None:
    """The job: count one completion; a latency job first records its submit→start in ms."""
    if t is None:
        _redis().incr(k)
        return
    pipe = _redis().pipeline(transaction=False)
    pipe.rpush(k + ":lat", (time.time() - t) * 1000.0)
    pipe.incr(k)
    pipe.execute()


_aclients: dict[int, object] = {}


async def abody(k: str, t: float | None = None) -> None:
    """The same body for the asyncio peers (pgqueuer, Procrastinate), with redis.asyncio."""
    import redis.asyncio

    client = _aclients.get(os.getpid())
    if client is None:
        client = _aclients[os.getpid()] = redis.asyncio.Redis.from_url(
            os.environ["BENCH_REDIS_URL"]
        )
    if t is None:
        await client.incr(k)
        return
    pipe = client.pipeline(transaction=False)
    pipe.rpush(k + ":lat", (time.time() - t) * 1000.0)
    pipe.incr(k)
    await pipe.execute()


# -- the driver ---------------------------------------------------------------------------------


def _plan(cmd: str, n: int, extra: float) -> list[tuple[float, int]]:
    """(not before this many seconds from the start, how many jobs) for each call."""
    if cmd == "one":
        return [(0.0, 1)] * n
    if cmd == "bulk":
        chunk = int(extra)
        return [(0.0, min(chunk, n - i)) for i in range(0, n, chunk)]
    return [(i / extra, 1) for i in range(n)]  # rate: one job each 1/extra s


def _sync(app, cmd: str, plan: list[tuple[float, int]], key: str) -> float:
    client = app.open()
    try:
        app.submit(client, key + ":warm", None)  # connects; counted under another key
        start = time.perf_counter()
        for not_before, count in plan:
            pause = start + not_before - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            if cmd == "bulk":
                app.submit_bulk(client, key, count)
            else:
                app.submit(client, key, time.time() if cmd == "rate" else None)
        return time.perf_counter() - start
    finally:
        app.close(client)


async def _async(app, cmd: str, plan: list[tuple[float, int]], key: str) -> float:
    client = await app.open()
    try:
        await app.submit(client, key + ":warm", None)
        start = time.perf_counter()
        for not_before, count in plan:
            pause = start + not_before - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            if cmd == "bulk":
                await app.submit_bulk(client, key, count)
            else:
                await app.submit(client, key, time.time() if cmd == "rate" else None)
        return time.perf_counter() - start
    finally:
        await app.close(client)


def main(argv: list[str]) -> int:
    cmd, n, key = argv[0], int(argv[1]), argv[2]
    extra = float(argv[3]) if len(argv) > 3 else 0.0
    app = importlib.import_module("app")
    if cmd == "bulk" and getattr(app, "submit_bulk", None) is None:
        print(json.dumps({"unsupported": True}))
        return 0
    plan = _plan(cmd, n, extra)
    if asyncio.iscoroutinefunction(app.submit):
        seconds = asyncio.run(_async(app, cmd, plan, key))
    else:
        seconds = _sync(app, cmd, plan, key)
    print(json.dumps({"jobs": n, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
