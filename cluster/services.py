"""The services host: a three-node RabbitMQ cluster, a PostgreSQL primary with a synchronous
streaming standby, and Redis, all started inside the services namespace by the inner process
(so their ports are that namespace's own and never the shared services').

Each is tracked by its process (or data directory, for the postmasters) and stopped by close();
the outer process also kills whatever is left in the namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.services import PG_BIN, RABBIT_BIN, port_open, wait_until

from cluster.net import PG_ADDRS, RABBIT_ADDRS, SUBNET, SVC_ADDR

AMQP_PORT = 5672  # each node on its own address of the services host
DIST_PORT_BASE = 25680
PG_PORTS = {"primary": 5441, "standby": 5442}
REDIS_PORT = 6391
COOKIE = "jqclusterbedcookie"
STANDBY_NAME = "standby1"


@dataclass
class Urls:
    database: str
    rabbitmq: str
    redis: str


class RabbitNode:
    def __init__(self, root: Path, i: int):
        self.i = i
        self.name = f"rabbit{i}@localhost"
        self.addr = RABBIT_ADDRS[i - 1]
        self.dir = root / f"rabbit{i}"
        self.home = root / "rabbit-home"  # one HOME, so one Erlang cookie for every node
        self.url = f"amqp://guest:guest@{self.addr}:{AMQP_PORT}/"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),  # not /etc's
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(AMQP_PORT),
            "RABBITMQ_NODE_IP_ADDRESS": self.addr,
            "RABBITMQ_DIST_PORT": str(DIST_PORT_BASE + self.i),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
        }

    def ctl(self, *args: str, check: bool = True, timeout: float = 90) -> str:
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stderr[-500:]}")
        return done.stdout

    def spawn(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(COOKIE)
            cookie.chmod(0o400)
            (self.home / "rabbitmq-env.conf").write_text("")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "plugins").write_text("")
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.addr}:{AMQP_PORT}\n"
            # The workers are other hosts: guest must be allowed beyond loopback (a test bed only).
            "loopback_users = none\n"
        )
        self.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env(),
            stdout=open(self.dir / "server.out", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def await_startup(self) -> None:
        wait_until(
            lambda: (
                self.proc is not None
                and self.proc.poll() is None
                and subprocess.run(
                    [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, "await_startup"],
                    env=self.env(),
                    capture_output=True,
                    timeout=90,
                ).returncode
                == 0
            ),
            180,
            f"RabbitMQ node {self.name}",
            interval=1.0,
        )
        wait_until(lambda: port_open(AMQP_PORT, self.addr), 30, f"{self.name}'s AMQP port")

    def kill(self) -> None:
        """kill -9 of the whole node (its Erlang VM and helpers), as a host crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only our processes
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.ctl("stop", check=False, timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class RabbitCluster:
    """Three nodes clustered with join_cluster, and the mirroring policy that keeps a classic
    priority queue alive when its home node dies (quorum queues have no priorities on 3.10)."""

    def __init__(self, root: Path):
        self.nodes = [RabbitNode(root, i) for i in (1, 2, 3)]
        self.url = ",".join(n.url for n in self.nodes)

    def spawn(self) -> None:
        for node in self.nodes:  # in parallel, and beside PostgreSQL's start: boot is slow
            node.spawn()

    def start(self) -> None:
        """Wait for the spawned nodes, join them, set the policy."""
        for node in self.nodes:
            node.await_startup()
        booted = time.monotonic()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        running = json.loads(first.ctl("cluster_status", "--formatter", "json"))["running_nodes"]
        if len(running) != 3:
            raise RuntimeError(f"RabbitMQ cluster has {running} running, not 3 nodes")
        print(f"cluster: RabbitMQ nodes joined in {time.monotonic() - booted:.0f}s", flush=True)
        first.ctl(
            "set_policy",
            "jq-mirror",
            ".*",
            '{"ha-mode":"all","ha-sync-mode":"automatic"}',
            "--apply-to",
            "queues",
        )

    def alive(self) -> list[RabbitNode]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def of_pid(self, pid: object) -> RabbitNode:
        """The node an Erlang pid lives on (rabbitmqctl prints it as <rabbit1@localhost.1.2.3>)."""
        text = str(pid)
        found = [n for n in self.nodes if n.name in text]
        if not found:
            raise RuntimeError(f"no node of ours in the pid {text!r}")
        return found[0]

    def _rows(self, *args: str) -> list[list[str]] | None:
        """A rabbitmqctl listing from any live node, as tab-separated fields (its plain output
        prints pids as <rabbit1@localhost.1.2.3>; the JSON one hides the node)."""
        for node in self.alive():
            try:
                out = node.ctl(*args, "--quiet", "--no-table-headers", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            return [line.split("\t") for line in out.splitlines() if line.strip()]
        return None

    def queue_home(self, queue: str) -> RabbitNode | None:
        """The node that holds the queue's master (where its messages live first)."""
        for row in self._rows("list_queues", "name", "pid") or []:
            if row[0] == queue:
                return self.of_pid(row[1])
        return None

    def connections(self) -> dict[str, list[str]]:
        """Client addresses connected to each live node."""
        out: dict[str, list[str]] = {}
        for row in self._rows("list_connections", "peer_host", "pid") or []:
            out.setdefault(self.of_pid(row[1]).name, []).append(row[0])
        return out

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except Exception as exc:
                print(f"cluster: could not stop {node.name}: {exc}")


class PgNode:
    def __init__(self, root: Path, role: str):
        self.role = role
        self.dir = root / f"pg-{role}"
        self.data = self.dir / "data"
        self.port = PG_PORTS[role]
        self.addr = PG_ADDRS[role]
        self.running = False

    def pg(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        cmd = ["runuser", "-u", "postgres", "--", str(PG_BIN / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} ({self.role}): {done.stderr[-800:]}")
        return done.stdout

    def options(self, extra: str = "", name: str | None = None) -> str:
        # fsync off: the bed kills processes, never the machine, so the page cache survives;
        # durability across the failover comes from the synchronous standby, as in production.
        return (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1,{self.addr} "
            f"-c fsync=off -c max_connections=300 -c cluster_name={name or self.role} {extra}"
        )

    def start(self, extra: str = "", name: str | None = None) -> None:
        self.pg(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "120",
            "-o", self.options(extra, name), "start",
        )  # fmt: skip
        self.running = True

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """kill -9 of the postmaster: the server is gone at once, its backends die with it."""
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.running = False

    def stop(self) -> None:
        if self.running:
            self.pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop", check=False)
            self.running = False


class PgPair:
    """A primary and a synchronous streaming standby (pg_basebackup -R): a commit returns only
    once the standby has the WAL, so promoting it loses no acknowledged transaction."""

    def __init__(self, root: Path):
        self.primary = PgNode(root, "primary")
        self.standby = PgNode(root, "standby")
        self.url = (
            f"postgresql://postgres@{self.primary.addr}:{self.primary.port},"
            f"{self.standby.addr}:{self.standby.port}/jq?target_session_attrs=read-write"
        )

    def start(self) -> None:
        p, s = self.primary, self.standby
        for node in (p, s):
            node.dir.mkdir(parents=True)
            shutil.chown(node.dir, "postgres")
        p.pg("initdb", "-D", str(p.data), "-A", "trust", "-U", "postgres", "--no-sync")
        with open(p.data / "pg_hba.conf", "a") as hba:
            hba.write(
                f"host all all {SUBNET}.0/24 trust\nhost replication all {SUBNET}.0/24 trust\n"
            )
        # Only on the command line: the standby's copy of postgresql.conf must not carry it, or
        # once promoted it would wait for a standby of its own that does not exist.
        p.start(f"-c synchronous_standby_names={STANDBY_NAME}")
        # No standby yet to wait for: this one commit is local.
        p.pg("psql", "-h", str(p.dir), "-p", str(p.port), "-c", "SET synchronous_commit = local",
             "-c", "CREATE DATABASE jq")  # fmt: skip
        s.pg(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres",
            "-D", str(s.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        s.start(name=STANDBY_NAME)  # its walreceiver's name: the one the primary waits for
        wait_until(self.synchronous, 60, "the standby to stream synchronously")

    def synchronous(self) -> bool:
        out = self.primary.pg(
            "psql", "-h", str(self.primary.dir), "-p", str(self.primary.port), "-Atc",
            "SELECT sync_state FROM pg_stat_replication", check=False,
        )  # fmt: skip
        return out.strip() == "sync"

    def promote(self) -> None:
        self.standby.pg("pg_ctl", "-D", str(self.standby.data), "-w", "-t", "60", "promote")

    def close(self) -> None:
        for node in (self.standby, self.primary):
            try:
                node.stop()
            except Exception as exc:
                print(f"cluster: could not stop PostgreSQL {node.role}: {exc}")


class Redis:
    def __init__(self, root: Path):
        self.dir = root / "redis"
        self.url = f"redis://{SVC_ADDR}:{REDIS_PORT}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", f"127.0.0.1 {SVC_ADDR}",
             "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=open(self.dir / "out", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_until(lambda: port_open(REDIS_PORT, SVC_ADDR), 20, "Redis")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class ServicesHost:
    """Everything on the services host; looks like chaos' services to chaos.harness.Run."""

    private = True

    def __init__(self, root: Path):
        self.root = root
        self.rabbit = RabbitCluster(root)
        self.pg = PgPair(root)
        self.redis = Redis(root)
        self.urls = Urls(self.pg.url, self.rabbit.url, self.redis.url)

    def __enter__(self) -> ServicesHost:
        try:
            started = time.monotonic()
            self.rabbit.spawn()
            self.pg.start()
            self.redis.start()
            pg_s = time.monotonic() - started
            self.rabbit.start()
            print(
                f"cluster: services up in {time.monotonic() - started:.0f}s "
                f"(PostgreSQL pair and Redis {pg_s:.0f}s)",
                flush=True,
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.rabbit.close()
        self.redis.close()
        self.pg.close()
