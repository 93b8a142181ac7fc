"""Private PostgreSQL, RabbitMQ and Redis instances for one chaos run, and the faults on them.

The shared instances on the default ports belong to other people's test runs: the suite never
stops, restarts or reconfigures them. Every process here is started by us, tracked by its pid
(or by its own data directory for the postmaster) and stopped by us, even on error or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBIT_BIN = Path(
    "/usr/lib/rabbitmq/bin"
)  # the real scripts (the /usr/sbin wrappers su to rabbitmq)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _free(port: int) -> None:
    if port_open(port):
        raise RuntimeError(
            f"port {port} is taken: a chaos run may already be running (or left behind)"
        )


@dataclass
class Urls:
    database: str
    rabbitmq: str
    redis: str


class PrivatePostgres:
    """A throw-away cluster (initdb into a temp dir, trust auth on 127.0.0.1), run as postgres."""

    def __init__(self, root: Path, port: int = 5433):
        self.dir = root / "pg"
        self.data = self.dir / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/jq"
        self.started = False

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", str(PG_BIN / args[0]), *args[1:]]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)

    def _options(self) -> str:
        # fsync off: the suite crashes the server process, never the machine, so nothing is lost.
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )

    def start(self) -> None:
        _free(self.port)
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.started = True
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            self._options(),
            "start",
        )

    def start_again(self) -> None:
        """Start the stopped cluster (after stop("immediate"): crash recovery, then ready)."""
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            self._options(),
            "start",
        )
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster; mode "immediate" is a crash: every backend dies, no checkpoint."""
        if self.started:
            self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop", check=False)
            self.started = False


class PrivateRabbit:
    """Its own node (jqchaos@localhost) with its own ports, cookie (HOME), data and no plugins."""

    def __init__(
        self, root: Path, port: int = 5673, dist_port: int = 25673, node: str = "jqchaos@localhost"
    ):
        self.dir = root / "rabbit"
        self.port, self.dist_port, self.node = port, dist_port, node
        self.url = f"amqp://guest:guest@127.0.0.1:{port}/"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
        }

    def ctl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def start(self) -> None:
        if self.proc is None:
            _free(self.port)
            _free(self.dist_port)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "plugins").write_text("")
        # guest may log in over 127.0.0.1 by default; nothing else to configure.
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        out = open(self.dir / "server.out", "ab")
        self.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: (
                self.proc.poll() is None
                and self.ctl("await_startup", "--timeout", "60", check=False).returncode == 0
            ),
            90,
            "the private RabbitMQ node",
            interval=1.0,
        )
        wait_until(lambda: port_open(self.port), 30, "the private RabbitMQ port")

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    def eval(self, expression: str) -> str:
        return self.ctl("eval", expression).stdout.strip()

    def stop(self) -> None:
        """Halt the node (a full broker stop); start() brings it back with its durable queues."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.ctl("stop", check=False)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session only
                self.proc.wait(10)
        self.proc = None


class PrivateRedis:
    def __init__(self, root: Path, port: int = 6380):
        self.dir = root / "redis"
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        _free(self.port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=open(self.dir / "out", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: port_open(self.port), 20, "the private Redis")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class PrivateServices:
    """All three, started together and stopped together (a context manager)."""

    private = True

    def __init__(self, base: str | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="jq-chaos-", dir=base))
        os.chmod(self.root, 0o755)  # the postgres user must reach its data directory
        self.postgres = PrivatePostgres(self.root)
        self.rabbit = PrivateRabbit(self.root)
        self.redis = PrivateRedis(self.root)
        self.urls = Urls(self.postgres.url, self.rabbit.url, self.redis.url)

    def __enter__(self) -> PrivateServices:
        try:
            self.postgres.start()
            self.redis.start()
            self.rabbit.start()
            # Ticks of one second, so that a low consumer_timeout is enforced within the scenario
            # (read by each channel when it opens; 3.10's default checks once a minute).
            self.rabbit.eval("application:set_env(rabbit, channel_tick_interval, 1000).")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for stop in (self.rabbit.stop, self.redis.stop, self.postgres.stop):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"chaos: could not stop a private service: {exc}")
        shutil.rmtree(self.root, ignore_errors=True)


class SharedServices:
    """The services the test suite already uses (quick subset: only jq processes are harmed)."""

    private = False

    def __init__(self, database: str, rabbitmq: str, redis: str):
        self.urls = Urls(database, rabbitmq, redis)
        self.root = Path(tempfile.mkdtemp(prefix="jq-chaos-quick-"))

    def __enter__(self) -> SharedServices:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
