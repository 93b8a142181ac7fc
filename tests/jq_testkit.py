"""Helpers of the service tiers: the services' URLs, fast settings, waiting on a condition with a
deadline, free ports, the environment of a jq subprocess and an in-process worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from jq_cli.config import Settings
from jq_cli.handlers import load_builtins

DATABASE_URL = os.environ.get("JQ_TEST_DATABASE_URL", "postgresql://localhost/jq_test")
RABBITMQ_URL = os.environ.get("JQ_TEST_RABBITMQ_URL", "amqp://guest:guest@localhost:5672/")
REDIS_URL = os.environ.get("JQ_TEST_REDIS_URL", "redis://localhost:6379/0")
# The shim answers loopback Host names without configuration (jq_cli/http/sites.py): test
# clients send one (TestClient's own default, "testserver", is refused).
LOOPBACK_URL = "http://127.0.0.1"
JQ = str(Path(sys.executable).parent / "jq")  # by path: `jq` on PATH may be the JSON tool
QUEUES = ("default", "other", "reports")

# Fast timings so that retries, leases and sweeps happen within a test's patience.
FAST = {
    "retry_base_delay": 0.2,
    "retry_max_delay": 2.0,
    "retry_jitter": 0.1,
    "lease_ttl": 3.0,
    "shutdown_grace": 5.0,
    "scheduler_interval": 0.1,
    "republish_after": 1.0,
    "heartbeat_interval": 0.5,
    "leader_lease": 3.0,  # a cut-off leader hands over within seconds, not the default 10
}


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str | Callable[[], str] = "condition",
):
    """Poll until predicate() is truthy; returns its value or fails the test with `what` (a callable
    is called only then, so that the message can show the state at the time of the failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)


def free_port() -> int:
    """A TCP port that was free a moment ago (nothing reserves it: see listen_on_free_port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_on_free_port(
    start: Callable[[int], subprocess.Popen],
    listening: Callable[[int], object],
    timeout: float = 20.0,
    attempts: int = 5,
) -> tuple[subprocess.Popen, int]:
    """Start a daemon with start(port) until it listens: free_port() only says a port was free, and on
    a shared machine another process may bind it before the daemon does. A daemon that exits saying
    the address is in use is started again on another port; any other exit fails the test."""
    for _ in range(attempts):
        port = free_port()
        proc = start(port)
        wait_for(
            lambda port=port, proc=proc: listening(port) or proc.poll() is not None,
            timeout,
            what=f"a daemon listening on {port}",
        )
        if proc.poll() is None:
            return proc, port
        err = proc.stderr.read() if proc.stderr else ""
        if "in use" not in err.lower():
            pytest.fail(
                f"the daemon exited {proc.returncode} before listening on {port}: {err[-2000:]}"
            )
    pytest.fail(f"no free port after {attempts} attempts")


def make_settings(namespace: str, **overrides) -> Settings:
    values = {
        "database_url": DATABASE_URL,
        "rabbitmq_url": RABBITMQ_URL,
        "redis_url": REDIS_URL,
        "namespace": namespace,
        **FAST,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess (jq CLI, worker) use these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JQ_")}
    env.update(settings.as_environment())
    return env


class WorkerThread:
    """An in-process worker (fast to start); stop() drains it as SIGTERM would."""

    def __init__(self, settings: Settings, **kwargs):
        from jq_cli.worker.daemon import Worker

        self.worker = Worker(settings, load_builtins(), **kwargs)
        self.exit_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.worker.consumer.connected.is_set(), 15, what="worker connected")

    def _run(self) -> None:
        self.exit_code = self.worker.run()

    def stop(self, timeout: float = 30) -> int | None:
        self.worker.request_stop()
        self.thread.join(timeout)
        return self.exit_code
