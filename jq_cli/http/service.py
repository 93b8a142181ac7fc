"""Routes about the shim itself: /health (the checks of `jq doctor`) and /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from jq_cli.http.jobs import Pool

router = APIRouter(tags=["service"])
# Without these the queue can neither take nor hand out work; without Redis it only loses telemetry.
ESSENTIAL = frozenset({"postgresql", "schema", "rabbitmq"})


@router.get("/health", summary="Each service's state; 503 when PostgreSQL or RabbitMQ is down")
def health(request: Request, pool: Pool) -> JSONResponse:
    """Open to all. When API keys are set, a caller without one sees only which checks pass, not
    the details (they name internal hosts)."""
    with pool.borrow() as ops:
        checks = ops.doctor()
    failed = {c.name for c in checks if not c.ok}
    status = "unavailable" if failed & ESSENTIAL else "degraded" if failed else "ok"
    detailed = request.scope.get("state", {}).get("authenticated", True)
    body: dict[str, Any] = {
        "status": status,
        "checks": [c.__dict__ if detailed else {"name": c.name, "ok": c.ok} for c in checks],
    }
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics of the shim and the queue",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
