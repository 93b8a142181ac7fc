"""RFC 9457 problem documents: the one place the shim turns an error into a status and a body.

Every error leaves as application/problem+json with `type`, `title`, `status` and `detail`; a
JqError keeps the meaning it has in the CLI (its `http_status`). No traceback ever goes out.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from jq_cli.errors import JqError
from jq_cli.model.jobspec import too_deep
from jq_cli.redaction import redact_known

log = logging.getLogger("jq.http")
MEDIA_TYPE = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """A problem document. `kind` names a jq error kind (its type is urn:jq:problem:KIND); without
    one the type is about:blank and the title is the status phrase, as RFC 9457 asks."""
    if kind:
        type_, title = f"urn:jq:problem:{kind}", kind.replace("-", " ").capitalize()
    else:
        type_, title = "about:blank", _phrase(status)
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    return ProblemResponse(body, status_code=status, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def unauthorized() -> ProblemResponse:
    return problem(
        401,
        "an API key is required: send `Authorization: Bearer KEY` or `X-API-Key: KEY`",
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="jq"'},
    )


def forbidden(detail: str) -> ProblemResponse:
    return problem(403, detail, kind="forbidden")


def too_large(limit: int) -> ProblemResponse:
    return problem(
        413,
        f"the request body is larger than the cap of {limit} bytes (JQ_MAX_PAYLOAD_BYTES)",
        kind="payload-too-large",
    )


def internal_error() -> ProblemResponse:
    return problem(500, "internal error: the server logged the details", kind="internal-error")


# -- validation errors ----------------------------------------------------------------------------


def _where(loc: tuple[Any, ...]) -> str:
    """A field's place in words: body fields by name (`payload.to`), the n-th job of a bulk body as
    `job N` counting from 1 (as the operations layer and `jq submit --file` number them)."""
    if not loc:
        return "request"
    source, rest = loc[0], list(loc[1:])
    if source == "body":
        if len(rest) >= 2 and rest[0] == "jobs" and isinstance(rest[1], int):
            field = ".".join(str(p) for p in rest[2:]) or "job"
            return f"job {rest[1] + 1}: {field}"
        return ".".join(str(p) for p in rest) or "body"
    name = ".".join(str(p) for p in rest)
    return f"{source} parameter {name}" if source in ("query", "path", "header") else name


def validation_problem(exc: RequestValidationError) -> ProblemResponse:
    errors: list[dict[str, Any]] = list(exc.errors())
    first: dict[str, Any] = (
        errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    )
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "malformed")
        return problem(400, f"the request body is not valid JSON: {reason}", kind="invalid-input")
    if tuple(first.get("loc", ())) == ("body",) and isinstance(
        first.get("input"), (bytes, bytearray)
    ):
        return problem(
            415, "send the body as JSON with `Content-Type: application/json`", kind="invalid-input"
        )
    listed = [
        {"field": _where(tuple(e.get("loc", ()))), "message": _message(e)} for e in errors[:20]
    ]
    # Every bad field in the detail too: a client that shows only `detail` must not fix one field
    # per round trip.
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in listed)
    if len(errors) > len(listed):
        detail += f"; and {len(errors) - len(listed)} more"
    return problem(422, detail, kind="invalid-input", errors=listed)


def _message(error: dict[str, Any]) -> str:
    # The same wording JobRequest.parse gives the CLI; the input itself is never echoed (it may
    # be a megabyte, or a secret).
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


# -- handlers ---------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors raised by routes into problem documents. Errors no
    handler knows are caught by the gate (jq_cli.http.gate), which answers a bare 500."""

    @app.exception_handler(JqError)
    async def _jq_error(request: Request, exc: JqError) -> ProblemResponse:
        # A JqError's message is written for users (the CLI prints it too), so it may go out,
        # cleared of the settings' passwords as the CLI's error line is.
        return problem(exc.http_status, redact_known(exc.message), kind=exc.kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> ProblemResponse:
        return validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI's body decoding recursed past Python's limit: a body nested far past
            # MAX_DEPTH, refused as the payload rule refuses it (422, not "cannot parse").
            return problem(422, str(too_deep("the request body")), kind="invalid-input")
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
        if exc.status_code >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, detail)
            return internal_error()
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))
