"""`jq top --web`: the same Textual dashboard served to a browser by textual-serve. Each browser
session runs `jq top` of these same settings as its own subprocess; when API keys are set (the
keys of `jq serve`), every request needs one, the page, its assets and the websocket alike.

Signing in: open `/?key=KEY` once; the server answers with a session cookie (HttpOnly,
SameSite=Strict) and a redirect to `/`, so the key leaves the address bar and the history. A
client may instead send the key as `X-API-Key` or `Authorization: Bearer`, as to `jq serve`.
The websocket also refuses an Origin other than the page's own, so that no other web site open
in the operator's browser can drive the dashboard (the loopback, keyless case included).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jq_cli.config import Settings, load_settings
from jq_cli.errors import JqError
from jq_cli.http.keys import ApiKeys, choose_host
from jq_cli.http.sites import STATE_CHANGING, AllowedHosts, default_hosts, same_origin
from jq_cli.redaction import RedactingFilter

DEFAULT_PORT = 8001  # beside jq serve's 8000, so that both can run with their defaults
COOKIE = "jq_top_session"
# Settings the dashboard's subprocesses do not need: API keys stay in the server process.
NOT_FOR_SESSIONS = ("JQ_API_KEY", "JQ_API_KEYS_FILE")
SESSION_GRACE = 15  # seconds a stopping server gives its sessions to quit


class WebExtraMissing(JqError):
    """textual-serve is not installed: a usage error, as `jq serve` without its extra."""

    exit_code = 2


def serve_dashboard(host: str | None, port: int | None, refresh: float) -> int:
    """Serve the dashboard until SIGTERM/SIGINT; returns the exit code. Raises InvalidInput for a
    non-loopback host without API keys or bad settings, WebExtraMissing without the web extra,
    JqError when the address cannot be listened on."""
    try:
        import textual_serve  # noqa: F401  (only to know it is there; used in _make_server)
    except ImportError:
        raise WebExtraMissing(
            "jq top --web needs the web extra: pip install 'jq-cli[web]'"
        ) from None
    settings = load_settings()
    keys = ApiKeys.from_settings(settings)
    bind = choose_host(host, keys, "jq top --web")
    port = DEFAULT_PORT if port is None else port
    _log_to_stderr(settings.log_level)
    # textual-serve starts each session with a copy of this process's environment: make it the
    # settings loaded here (so a session sees what this command saw, .env included), passed by
    # environment because a command line is visible to every user in `ps`.
    os.environ.clear()
    os.environ.update(session_environment(settings, os.environ))
    hosts = default_hosts(settings, keys, bind=bind)
    server = _make_server(session_command(refresh), bind, port, keys, hosts)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the address is not this machine's
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise JqError(f"cannot listen on {bind}:{port}: {reason}") from None
    return 0


def session_command(refresh: float) -> str:
    """The shell command textual-serve runs per browser session: this same `jq top` (exec: the
    session is the server's own child, not a shell's)."""
    return "exec " + shlex.join([sys.executable, "-m", "jq_cli", "top", "--refresh", repr(refresh)])


def session_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of a session: ours without any JQ_* setting, then these settings."""
    env = {k: v for k, v in environ.items() if not k.startswith("JQ_")}
    env.update(settings.as_environment())
    for name in NOT_FOR_SESSIONS:
        env.pop(name, None)
    return env


Handler = Callable[[Any], Awaitable[Any]]


def _make_server(command: str, host: str, port: int, keys: ApiKeys, hosts: AllowedHosts) -> Any:
    # textual-serve (and aiohttp under it) are imported here, never by `jq top` without --web.
    from aiohttp import WSCloseCode, web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server

    session = secrets.token_urlsafe(32)  # the cookie's value; a restart signs everyone out
    # The open browser sessions, each a websocket and its `jq top` subprocess.
    open_sessions: dict[web.WebSocketResponse, asyncio.Event] = {}

    def authenticated(request: web.Request) -> bool:
        if not keys:
            return True
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), session.encode()):
            return True
        presented = request.headers.get("X-API-Key", "")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            presented = presented or token
        return bool(presented) and keys.accepts(presented.strip().encode())

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        # The rule of jq serve too (jq_cli/http/sites.py): a page of another site whose name
        # resolves here (DNS rebinding) or that sends a request from the operator's browser
        # must not reach the dashboard.
        if not hosts.allows(request.host):
            return _forbidden("this server does not answer to that Host name")
        if (request.path == "/ws" or request.method in STATE_CHANGING) and not same_origin(
            request.headers.get("Origin"), request.host
        ):
            return _forbidden("cross-origin request refused")
        key = request.query.get("key")
        if keys and key is not None and request.path == "/":
            if not keys.accepts(key.strip().encode()):
                return _unauthorized()
            # Swap the key for the session cookie and drop it from the address.
            response = web.Response(status=303, headers={"Location": "/"})
            response.set_cookie(
                COOKIE, session, httponly=True, samesite="Strict", secure=_https(request), path="/"
            )
            return response
        if not authenticated(request):
            return _unauthorized()
        return await handler(request)

    class DashboardServer(Server):
        """textual-serve's server with the gate, our page, and jq's own logging."""

        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            app.middlewares.append(gate)
            return app

        def initialize_logging(self) -> None:
            pass  # _log_to_stderr did it, in jq's format

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            # textual-serve's own handler, keeping the sessions so that a stopping server can end
            # them (its handler would leave each `jq top` to notice, seconds later, that its
            # output goes nowhere).
            websocket = web.WebSocketResponse(heartbeat=15)
            ended = open_sessions[websocket] = asyncio.Event()
            try:
                await websocket.prepare(request)

                async def close() -> None:
                    await websocket.close()

                service = AppService(
                    self.command,
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=close,
                    download_manager=self.download_manager,
                )
                await service.start(*_terminal_size(request.query))
                try:
                    await self._process_messages(websocket, service)
                finally:
                    await service.stop()  # asks the app to quit, waits for it to exit
            finally:
                ended.set()
                del open_sessions[websocket]
            return websocket

        async def on_shutdown(self, app: web.Application) -> None:
            sessions = list(open_sessions.items())
            for websocket, _ in sessions:
                await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
            if sessions:
                await asyncio.wait(
                    [asyncio.create_task(ended.wait()) for _, ended in sessions],
                    timeout=SESSION_GRACE,
                )

        async def on_startup(self, app: web.Application) -> None:
            where = f"http://{_url_host(host)}:{port}/"
            access = (
                f"{len(keys)} API key(s) loaded: open {where}?key=<an API key> once"
                if keys
                else "no API key set: listening on loopback only"
            )
            sys.stderr.write(f"jq top --web: serving the dashboard on {where} ({access})\n")
            sys.stderr.flush()

        async def handle_index(self, request: web.Request) -> web.Response:
            # textual-serve's own page fetches a web font from outside: ours loads nothing from
            # anywhere but this server.
            return web.Response(
                text=page(),
                content_type="text/html",
                headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
            )

    return DashboardServer(command, host=host, port=port, title="jq top")


def _https(request: Any) -> bool:
    # Behind a TLS-terminating proxy the request arrives as http; the proxy says what it was.
    return bool(request.secure or request.headers.get("X-Forwarded-Proto") == "https")


def _terminal_size(query: Mapping[str, str]) -> tuple[int, int]:
    """The browser's terminal in cells, as it asks (bounded: a number from a URL)."""

    def cells(name: str, default: int) -> int:
        try:
            return min(max(int(query.get(name, default)), 10), 1000)
        except ValueError:
            return default

    return cells("width", 80), cells("height", 24)


def _forbidden(why: str) -> Any:
    from aiohttp import web

    return web.Response(status=403, text=f"jq top --web: {why}\n")


def _unauthorized() -> Any:
    from aiohttp import web

    return web.Response(
        status=401,
        text="jq top --web: an API key is needed: open /?key=<an API key>\n",
        headers={"WWW-Authenticate": 'Bearer realm="jq"', "Cache-Control": "no-store"},
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def page(static: str = "/static/") -> str:
    """The HTML of the dashboard: xterm.js (textual.js, shipped with textual-serve) in a full
    window, connected to this server's /ws; a line says when the session has ended."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>jq top</title>
<link rel="stylesheet" href="{static}css/xterm.css">
<script src="{static}js/textual.js"></script>
<style>
@font-face {{
  font-family: "Roboto Mono";
  src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
}}
html, body {{ margin: 0; height: 100%; background: #0c181f; }}
#terminal {{ position: absolute; inset: 0; }}
#ended {{ display: none; position: absolute; top: 40%; width: 100%; text-align: center;
  color: #eee; font: 16px "Roboto Mono", monospace; z-index: 10; }}
body.-closed #ended {{ display: block; }}
body.-closed #terminal {{ opacity: 0.3; }}
</style>
</head>
<body>
<div id="ended">The session has ended. <a href="/" style="color:#8cf">Reload</a> to start another.</div>
<div id="terminal" class="textual-terminal" data-font-size="16"></div>
<script>
// The websocket goes back to the address the browser used, over TLS when the page came over TLS
// (behind a proxy, or with 0.0.0.0 as the bind address, no address the server knows would do).
document.getElementById("terminal").dataset.sessionWebsocketUrl =
  (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
</script>
</body>
</html>
"""


def _log_to_stderr(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no password of a service URL in any line
    for name in ("jq", "textual-serve", "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # aiohttp's access lines carry the query string, and so the key of a `/?key=` sign-in.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
