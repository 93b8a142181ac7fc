"""The gate every request passes before routing: the site it comes from (Host and Origin), API
key, body size, request metrics, the access log, and the last-resort handler that answers a bare 500 (and logs the traceback) for an
unexpected error."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jq_cli.http import problems
from jq_cli.http.keys import ApiKeys
from jq_cli.http.sites import STATE_CHANGING, AllowedHosts, same_origin

log = logging.getLogger("jq.http")
access_log = logging.getLogger("jq.http.access")
OPEN_PATHS = frozenset({"/health"})
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Gate:
    """Pure ASGI middleware. Refuses a request for a Host not allowed, or a state-changing one
    from another site's page (403, jq_cli.http.sites; `hosts` None allows any Host), one without
    a valid key (401) before reading its body, one whose body exceeds the limit (413, from
    Content-Length or by counting), and replays the body it read to the application."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: ApiKeys,
        max_body: int,
        observe: Callable[..., None],
        routes: Callable[[], Sequence[BaseRoute]],
        hosts: AllowedHosts | None = None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.keys = keys
        self.max_body = max_body
        self.observe = observe
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, responded = 500, False

        async def send_noting(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
            await send(message)

        try:
            refusal = self._check_site(scope) or self._authenticate(scope)
            if refusal is None:
                refusal, receive = await self._read_body(scope, receive)
            await (refusal or self.app)(scope, receive, send_noting)
        except Exception:
            # The traceback goes to the log, never to the client.
            log.error(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=True
            )
            if not responded:
                await problems.internal_error()(scope, receive, send_noting)
        finally:
            elapsed = time.perf_counter() - started
            self.observe(scope.get("method", ""), self._route(scope), status, elapsed)
            access_log.info(
                '%s - "%s %s" %d %.1fms',
                _client(scope),
                scope.get("method", ""),
                logged_path(scope),
                status,
                elapsed * 1000,
            )

    def _check_site(self, scope: Scope) -> problems.ProblemResponse | None:
        host = _header(scope, b"host")
        if self.hosts is not None and not self.hosts.allows(host):
            # A name that resolves here but is not ours: DNS rebinding, or a misconfigured proxy.
            return problems.forbidden(
                "this server does not answer to that Host name: add it to "
                "JQ_SERVE_ALLOWED_HOSTS (or --allowed-host) if it is yours"
            )
        if scope.get("method") in STATE_CHANGING and not same_origin(
            _header(scope, b"origin"), host
        ):
            return problems.forbidden("cross-origin request refused: the Origin is not this server")
        return None

    def _authenticate(self, scope: Scope) -> problems.ProblemResponse | None:
        authenticated = not self.keys
        key_name = None  # the audit log's "who" of this request
        if self.keys:
            for name, value in scope.get("headers", ()):
                presented = None
                if name == b"x-api-key":
                    presented = value.strip()
                elif name == b"authorization":
                    scheme, _, token = value.partition(b" ")
                    if scheme.lower() == b"bearer":
                        presented = token.strip()
                if presented is not None:
                    key_name = key_name or self.keys.name_of(presented)
            authenticated = key_name is not None
        # /health answers everyone, with details only for the authenticated (see routes).
        state = scope.setdefault("state", {})
        state["authenticated"] = authenticated
        state["api_key_name"] = key_name
        if authenticated or scope.get("path") in OPEN_PATHS:
            return None
        return problems.unauthorized()

    async def _read_body(
        self, scope: Scope, receive: Receive
    ) -> tuple[problems.ProblemResponse | None, Receive]:
        length = _content_length(scope)
        if length is not None and length > self.max_body:
            return problems.too_large(self.max_body), receive
        if scope.get("method") in BODYLESS and not length:
            return None, receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None, _replay([message], receive)  # a disconnect: let the app see it
            size += len(message.get("body", b""))
            if size > self.max_body:
                return problems.too_large(self.max_body), receive
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return None, _replay([whole], receive)

    def _route(self, scope: Scope) -> str:
        """The route's path template (bounded cardinality); `unmatched` for any other path."""
        route = scope.get("route")
        if route is None:
            for candidate in self.routes():
                if (
                    isinstance(getattr(candidate, "path", None), str)
                    and candidate.matches(scope)[0] is not Match.NONE
                ):
                    route = candidate
                    break
        return getattr(route, "path", None) or "unmatched"


def logged_path(scope: Scope) -> str:
    """The path of a request as the access log shows it: never its query string (a client may
    send a key as `?key=`), still percent-encoded (no line breaks in a log line)."""
    raw = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    path = raw.partition(b"?")[0].decode("ascii", "backslashreplace")
    return "".join(c if c.isprintable() and c != " " else repr(c)[1:-1] for c in path)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (as latin-1, as HTTP/1.1 defines bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # counted while reading instead
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
