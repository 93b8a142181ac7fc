"""Fixtures of the service tiers (tests/integration, tests/acceptance): every test gets its own
namespace (Postgres schema, RabbitMQ queues, Redis keys) against the real services, and removes it
afterwards. The helpers they use (wait_for, make_settings ...) are in jq_testkit, which each tier's
conftest re-exports so that a test's `from conftest import wait_for` keeps working."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from jq_cli.broker import Publisher
from jq_cli.client import Client
from jq_cli.config import Settings
from jq_cli.errors import JqError
from jq_cli.observe.telemetry import Telemetry
from jq_cli.store import Store

from jq_testkit import (
    DATABASE_URL,
    JQ,
    QUEUES,
    WorkerThread,
    make_settings,
    settings_env,
)
from schema_pool import SchemaPool


@pytest.fixture(scope="session")
def _test_database() -> None:
    """The test database exists. Parallel test processes may race to create it: the loser's error
    is fine once the database is there."""
    deadline = time.monotonic() + 30
    while True:
        try:
            Store(DATABASE_URL, "public").ensure_database()
            return
        except JqError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def _schema_pool(_test_database: None) -> Iterator[SchemaPool]:
    """This test process's migrated schema, lent to one test at a time (schema_pool.py)."""
    pool = SchemaPool(DATABASE_URL)
    yield pool
    pool.close()


@pytest.fixture
def settings(_schema_pool: SchemaPool) -> Iterator[Settings]:
    ns = f"t{uuid.uuid4().hex[:12]}"
    s = make_settings(ns)
    _schema_pool.lend(ns)
    yield s
    _schema_pool.give_back(ns)
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


# Modules whose tests share a costly fixture wider than a test (test_scale: a million-row table):
# under pytest-xdist (make test) each stays in one test process, so that it is built once.
SHARED_SETUP = ("test_scale.py",)
# Modules that assert on timings (test_scale: a query's cost as a multiple of a key lookup's) which
# the load of other tests running beside them distorts: marked `alone`, and make test runs them
# by themselves after the parallel run.
ALONE = ("test_scale.py",)
# The longest tests first (seconds measured on a loaded machine: the three-host cluster 258, the
# chaos scenarios 27 to 87 each, the browser 89, then tens), so that none of them starts last and
# holds the whole run up; every other test keeps its place.
LONGEST_FIRST = (
    "test_cluster_quick.py",
    "test_chaos_quick.py",
    "test_tui_web.py",
    "test_readme.py",
    "test_audit.py",
    "test_schedules.py",
    "test_http_schema.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups, marks and order for pytest-xdist (SHARED_SETUP, ALONE, LONGEST_FIRST). Runs before xdist reads the
    groups (--dist loadgroup), which hands the groups out first, largest first, then the rest in
    this order."""

    def rank(item: pytest.Item) -> int:
        module = item.path.name
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    for item in items:
        if item.path.name in SHARED_SETUP and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
        if item.path.name in ALONE:
            item.add_marker(pytest.mark.alone)
    items.sort(key=rank)  # stable: the order within a rank is the collection's
