"""The application factory of the HTTP shim: routes, problem documents, the gate, the pool."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from jq_cli import __version__
from jq_cli.client import Client
from jq_cli.config import Settings, load_settings
from jq_cli.http import docs, jobs, problems, schedules, service
from jq_cli.http.gate import Gate
from jq_cli.http.keys import ApiKeys
from jq_cli.http.metrics import HttpMetrics
from jq_cli.http.pool import OpsPool
from jq_cli.http.sites import AllowedHosts, default_hosts

DESCRIPTION = """The jq job queue over HTTP: the same operations and errors as the `jq` command.

Errors are RFC 9457 problem documents (`application/problem+json`). When the server has API
keys, every endpoint but `/health` needs `Authorization: Bearer KEY` or `X-API-Key: KEY`."""


def create_app(
    settings: Settings | None = None,
    *,
    ops_factory: Callable[[], Client] | None = None,
    api_keys: ApiKeys | Iterable[str] | None = None,
    pool_size: int = 16,
    allowed_hosts: AllowedHosts | None = None,
) -> FastAPI:
    """The ASGI app. `settings` default to the environment's; `ops_factory` makes the Client
    each request borrows (default: Client(settings)); without `api_keys` nothing needs a key.
    The request body limit is settings.max_payload_bytes (JQ_MAX_PAYLOAD_BYTES).
    `allowed_hosts` default to loopback names and JQ_SERVE_ALLOWED_HOSTS; with API keys and no
    names configured, any Host is answered (a rebinding page has no key to send)."""
    settings = settings or load_settings()
    keys = api_keys if isinstance(api_keys, ApiKeys) else ApiKeys(api_keys or ())
    if allowed_hosts is None:
        allowed_hosts = default_hosts(settings, keys)
    pool = OpsPool(ops_factory or functools.partial(Client, settings), pool_size)
    metrics = HttpMetrics(pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="jq",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # http/docs.py serves the page and its assets itself: no CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.metrics = metrics
    problems.install(app)
    docs.install(app)
    for module in (jobs, schedules, service):
        app.include_router(module.router)
    # The gate labels a request it refuses before routing by matching these itself (the routers'
    # own lists: newer FastAPI nests included routers in app.routes).
    routes = [
        *app.routes,
        *(r for module in (jobs, schedules, service) for r in module.router.routes),
    ]
    app.add_middleware(
        Gate,
        keys=keys,
        max_body=settings.max_payload_bytes,
        observe=metrics.observe,
        routes=lambda: routes,
        hosts=allowed_hosts,
    )
    return app
