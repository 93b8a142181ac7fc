"""Fixtures: every test gets its own namespace (Postgres schema, RabbitMQ queues, Redis keys)
against the real services, and removes it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jq_cli.broker import Publisher
from jq_cli.client import Client
from jq_cli.config import Settings
from jq_cli.handlers import load_builtins
from jq_cli.observe.telemetry import Telemetry
from jq_cli.store import Store

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


@pytest.fixture(scope="session", autouse=True)
def _test_database() -> None:
    Store(DATABASE_URL, "public").ensure_database()


@pytest.fixture
def settings() -> Iterator[Settings]:
    ns = f"t{uuid.uuid4().hex[:12]}"
    s = make_settings(ns)
    store = Store(s.database_url, ns)
    store.migrate()
    store.close()
    yield s
    store = Store(s.database_url, ns)
    store.drop_namespace()
    store.close()
    publisher = Publisher(s.rabbitmq_url, ns)
    publisher.delete_namespace_queues(QUEUES)
    publisher.close()
    telemetry = Telemetry(s.redis_url, ns)
    try:
        telemetry.delete_namespace()
    finally:
        telemetry.close()


@pytest.fixture
def ops(settings: Settings) -> Iterator[Client]:
    with Client(settings) as o:
        yield o


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.database_url, settings.namespace)
    yield s
    s.close()


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return settings_env(settings)


@pytest.fixture
def run_cli(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run the installed `jq` command as a user would; returns the completed process."""

    def run(
        *args: str, input: str | None = None, timeout: float = 60, extra_env: dict | None = None
    ):
        return subprocess.run(
            [JQ, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**env, **(extra_env or {})},
        )

    return run


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


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[..., WorkerThread]]:
    started: list[WorkerThread] = []

    def start(**kwargs) -> WorkerThread:
        w = WorkerThread(kwargs.pop("settings", settings), **kwargs)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.thread.is_alive():
            w.worker.forced.set()
            w.stop(10)


@pytest.fixture
def start_scheduler(settings: Settings) -> Iterator[Callable[..., object]]:
    from jq_cli.scheduler.daemon import Scheduler

    started: list[tuple[Scheduler, threading.Thread]] = []

    def start(**kwargs) -> Scheduler:
        s = Scheduler(kwargs.pop("settings", settings), **kwargs)
        t = threading.Thread(target=s.run, daemon=True)
        t.start()
        started.append((s, t))
        return s

    yield start
    for s, t in started:
        s.request_stop()
        t.join(10)


@pytest.fixture
def make_scheduler(settings):
    """Schedulers driven by hand (run_once, rescuer.run_once ...) rather than by their loop."""
    from jq_cli.scheduler.daemon import Scheduler

    made: list = []

    def make(name: str):
        s = Scheduler(settings, name=name)
        made.append(s)
        return s

    yield make
    for s in made:
        s.store.close()
        s.publisher.close()


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `jq worker`/`jq scheduler` as real processes (for kill -9 and signal tests)."""
    procs: list[subprocess.Popen] = []

    def start(*args: str, extra_env: dict | None = None) -> subprocess.Popen:
        p = subprocess.Popen(
            [JQ, *args],
            env={**env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(10)
