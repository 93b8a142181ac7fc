"""What every workload stands on: a throw-away namespace, worker subprocesses that are always
stopped, and the few measurements the jq API does not offer (consumer count, RSS, versions).

The benchmark is a harness, not a front end: it reads the database's own timestamps and the
broker's consumer count directly, because those are the clocks and counters it measures with.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from jq_cli.broker import Publisher, queue_name
from jq_cli.client import Client
from jq_cli.config import Settings, load_settings
from jq_cli.observe.telemetry import Telemetry
from jq_cli.store import Store

JQ = str(Path(sys.executable).parent / "jq")  # by path: `jq` on PATH may be the JSON processor
QUEUE = "default"
STOP_GRACE = 10.0  # seconds a worker gets to drain after SIGTERM before SIGKILL
LOG_DIR = Path(tempfile.mkdtemp(prefix="jq-bench-"))

# -- subprocesses -------------------------------------------------------------------------------

_live: list[subprocess.Popen] = []


def spawn(
    args: Sequence[str], env: dict[str, str], log_name: str, cwd: Path | None = None
) -> subprocess.Popen:
    """Start a process whose output goes to a log file (a pipe nobody reads would block it)."""
    log = open(LOG_DIR / f"{log_name}.log", "ab")
    try:
        proc = subprocess.Popen(
            list(args),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
    finally:
        log.close()
    _live.append(proc)
    return proc


def stop(procs: Sequence[subprocess.Popen], grace: float = STOP_GRACE) -> None:
    """SIGTERM each process we started, wait up to `grace`, then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc in _live:
            _live.remove(proc)


def stop_all() -> None:
    stop(list(_live))


atexit.register(stop_all)


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU time (user + system) of every process on the machine: {pid: (command, seconds)}."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it exited while we looked
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry.name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return found


def cpu_by_service(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    workers: Sequence[int],
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, grouped by who spent them. Processes that exited
    in between are not counted; ones that started are counted whole."""
    groups = {
        "postgres": "postgresql",
        "beam.smp": "rabbitmq",
        "redis-server": "redis",
        "jq": "jq processes not ours",
    }
    spent: dict[str, float] = {}
    for pid, (comm, seconds) in after.items():
        used = seconds - before.get(pid, (comm, 0.0))[1]
        if used <= 0:
            continue
        if pid in workers:
            group = "jq workers"
        elif pid == os.getpid():
            group = "bench (this process)"
        else:
            group = groups.get(comm, comm)
        spent[group] = spent.get(group, 0.0) + used
    total = sum(spent.values())
    shown: dict[str, float] = {}
    for group, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        key = group if seconds >= 0.02 * total or group in groups.values() else "other"
        shown[key] = shown.get(key, 0.0) + seconds
    return {k: round(v, 2) for k, v in shown.items()}


def rss_kb(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# -- the sandbox ----------------------------------------------------------------------------------


class Sandbox:
    """A fresh namespace (schema, queues, Redis keys) for one workload; removed on exit."""

    def __init__(self, label: str, run_id: str, **overrides: Any):
        self.namespace = f"bench_{run_id}_{label.lower()}"
        # By default a short grace and heartbeat: the workers stop fast and show up fast. The
        # comparison with the peers passes its own (jq's defaults but for the grace).
        overrides = overrides or {"shutdown_grace": 5.0, "heartbeat_interval": 1.0}
        self.settings: Settings = load_settings(namespace=self.namespace, **overrides)
        self.store = Store(self.settings.database_url, self.namespace, application_name="jq-bench")
        self._amqp: pika.BlockingConnection | None = None
        self._channel = None
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Sandbox:
        self.store.ensure_database()
        self.store.migrate()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            stop(self.procs)
        finally:
            self._teardown()

    def _teardown(self) -> None:
        if self._amqp is not None and self._amqp.is_open:
            # idle since the workers registered: the broker may have dropped it for missed heartbeats
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._amqp.close()
        self.store.drop_namespace()
        self.store.close()
        publisher = Publisher(self.settings.rabbitmq_url, self.namespace)
        try:
            publisher.delete_namespace_queues([QUEUE])
        finally:
            publisher.close()
        telemetry = Telemetry(self.settings.redis_url, self.namespace)
        try:
            telemetry.delete_namespace()
        finally:
            telemetry.close()

    # -- jq itself --------------------------------------------------------------------------

    def client(self) -> Client:
        return Client(self.settings)

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a `jq` subprocess at this sandbox."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JQ_")}
        env.update(self.settings.as_environment())
        return env

    def start_workers(self, count: int, *flags: str) -> list[subprocess.Popen]:
        """`count` × `jq worker` with these flags (none: jq's defaults)."""
        started = [
            spawn(
                [JQ, "worker", *flags],
                self.env,
                f"{self.namespace}-worker{n}",
            )
            for n in range(count)
        ]
        self.procs.extend(started)
        return started

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker pid {proc.pid} exited with {proc.returncode}; see {LOG_DIR}"
                )

    # -- measurements ---------------------------------------------------------------------

    def sql(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        return self.store.conn.execute(query, params).fetchall()

    def count(self, state: str = "completed") -> int:
        return self.sql("SELECT count(*) AS n FROM jobs WHERE state = %s", (state,))[0]["n"]

    def consumers(self) -> int:
        """How many consumers the broker has on the queue (0 while it does not exist yet)."""
        channel = self._channel
        if channel is None or not channel.is_open:
            if self._amqp is None or not self._amqp.is_open:
                self._amqp = pika.BlockingConnection(pika.URLParameters(self.settings.rabbitmq_url))
            channel = self._channel = self._amqp.channel()
        try:
            frame = channel.queue_declare(queue_name(self.namespace, QUEUE), passive=True)
        except pika.exceptions.ChannelClosedByBroker:  # 404: no worker has declared it yet
            self._channel = None
            return 0
        return frame.method.consumer_count

    def wait_consuming(
        self, count: int, timeout: float = 30.0, poll: float = 0.005
    ) -> tuple[float, float]:
        """Wait until `count` consumers are registered. Returns the perf_counter times at which
        the first and the last of them were seen."""
        first = None
        deadline = time.monotonic() + timeout
        while True:
            n = self.consumers()
            now = time.perf_counter()
            if n and first is None:
                first = now
            if n >= count:
                return (now if first is None else first), now
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {n} of {count} workers consuming after {timeout}s; see {LOG_DIR}"
                )
            time.sleep(poll)

    def wait_completed(
        self, total: int, timeout: float, poll: float = 0.02, on_poll=None
    ) -> tuple[float, int]:
        """Poll Postgres until `total` jobs are completed. Returns (perf_counter time, completed)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.count()
            now = time.perf_counter()
            if on_poll is not None:
                on_poll(done)
            if done >= total or time.monotonic() > deadline:
                return now, done
            self.check_alive()
            time.sleep(poll)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


# -- machine and versions -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1048576, 1),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def versions(settings: Settings) -> dict[str, str]:
    import jq_cli

    found = {"python": platform.python_version(), "jq": jq_cli.__version__}
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=5,
        )
        if rev.returncode == 0:
            found["jq"] += f" ({rev.stdout.strip()})"
    except (OSError, subprocess.TimeoutExpired):
        pass
    store = Store(settings.database_url, "public", application_name="jq-bench")
    try:
        row = store.conn.execute("SHOW server_version").fetchone()
        found["postgresql"] = row["server_version"] if row else "unknown"
    except Exception as exc:  # a version we cannot read is reported, not fatal
        found["postgresql"] = f"unknown ({type(exc).__name__})"
    finally:
        store.close()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(settings.rabbitmq_url))
        props = conn._impl.server_properties  # pika keeps the broker's handshake here
        conn.close()
        version = props.get("version", b"?")
        found["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
    except Exception as exc:
        found["rabbitmq"] = f"unknown ({type(exc).__name__})"
    try:
        import redis

        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2)
        found["redis"] = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:
        found["redis"] = f"unknown ({type(exc).__name__})"
    return found
