"""`jq serve`: the shim under uvicorn, listening on loopback only unless API keys are set."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence

import uvicorn

from jq_cli.config import load_settings
from jq_cli.http.app import create_app
from jq_cli.http.keys import ApiKeys, choose_host
from jq_cli.http.sites import default_hosts
from jq_cli.observe import sdnotify
from jq_cli.redaction import RedactingFilter

GRACE = 10  # seconds open requests get after SIGTERM; jq-serve.service's TimeoutStopSec is longer


class NotifyingServer(uvicorn.Server):
    """Tells systemd (Type=notify) once the socket is bound, and again when stopping; exits 0
    after a graceful stop on SIGTERM/SIGINT, as the other daemons do (uvicorn would re-raise the
    signal and die by it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum: int, frame: object) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: do not wait for open connections
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            sdnotify.notify("READY=1", f"STATUS=serving on {self.config.host}:{self.config.port}")

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sdnotify.notify("STOPPING=1")
        await super().shutdown(sockets=sockets)


def serve(host: str | None, port: int, allowed_hosts: Sequence[str] = ()) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code. `allowed_hosts` are Host names to answer
    besides loopback, the bind address and JQ_SERVE_ALLOWED_HOSTS. Raises InvalidInput for bad
    settings."""
    settings = load_settings()
    keys = ApiKeys.from_settings(settings)
    bind = choose_host(host, keys)
    _log_to_stderr(settings.log_level)
    if not keys:
        sys.stderr.write(
            f"jq serve: no API key set (JQ_API_KEY or JQ_API_KEYS_FILE): listening on {bind} only\n"
        )
    else:
        sys.stderr.write(
            f"jq serve: {len(keys)} API key(s) loaded: every endpoint but /health needs one\n"
        )
    hosts = default_hosts(settings, keys, allowed_hosts, bind=bind)
    app = create_app(settings, api_keys=keys, allowed_hosts=hosts)
    config = uvicorn.Config(
        app,
        host=bind,
        port=port,
        log_level=settings.log_level.lower(),
        server_header=False,
        log_config=None,
        access_log=False,  # the gate logs each request, without its query string (gate.py)
        timeout_graceful_shutdown=GRACE,
    )
    server = NotifyingServer(config)
    server.run()
    return 0 if server.started else 1


def _log_to_stderr(level: str) -> None:
    # One line per event; uvicorn's own loggers (startup, errors) share the handler. The access
    # lines are the gate's (jq.http.access): the path alone, never the query string (a key sent
    # as `?key=` would be in it) nor headers.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no password of a service URL in any line
    for name in ("jq", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
