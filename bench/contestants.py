"""Who competes: jq (at its defaults and at `--concurrency 1`) and the peers, each with the
command its documentation gives for running workers, its settings, what it keeps durable, and
the private namespace the bench makes for it and removes afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from jq_cli.config import load_settings

from bench.harness import Sandbox
from bench.venvs import PEERS_DIR

RQ_DB = int(os.environ.get("BENCH_RQ_REDIS_DB", "13"))  # a Redis database the bench owns
PROCESSES = 2  # worker processes per contestant


@dataclass(frozen=True)
class Contestant:
    key: str  # the row's name in the JSON
    peer: str  # its directory under bench/peers/
    label: str
    settings: str  # printed beside its row
    durable: str  # what a submitted job survives in
    needs: tuple[str, ...] = ()  # "pg": a database of its own, "amqp": a vhost, "rq": RQ_DB
    worker_args: tuple[str, ...] = ()  # after the executable
    executable: str = ""  # in the venv's bin/
    one_process_runs_all: bool = False  # the CLI forks PROCESSES children itself
    setup: tuple[tuple[str, ...], ...] = ()  # commands run in the venv before the workers
    extra_env: dict[str, str] = field(default_factory=dict)

    def worker_commands(self, bin_dir: Path) -> list[list[str]]:
        command = [str(bin_dir / self.executable), *self.worker_args]
        return [command] if self.one_process_runs_all else [command] * PROCESSES


JQ_DURABLE = "PostgreSQL row (committed) + RabbitMQ durable queue, persistent message"


def _jq_default(field_name: str) -> object:
    """jq's default for a setting, read from the model so that the label follows the code."""
    from jq_cli.config import Settings

    return Settings.model_fields[field_name].default


_JQ_DEFAULTS = (
    f"concurrency {_jq_default('worker_concurrency')}, "
    f"prefetch {_jq_default('worker_prefetch') or 'auto'}"
)
CONTESTANTS = [
    Contestant(
        "jq",
        "jq",
        "jq, defaults",
        f"`jq worker --import app` ×2: {_JQ_DEFAULTS}",
        JQ_DURABLE,
        executable="jq",
        worker_args=("worker", "--import", "app"),
    ),
    Contestant(
        "jq_c1",
        "jq",
        "jq, --concurrency 1",
        "`jq worker --import app --concurrency 1` ×2: otherwise defaults",
        JQ_DURABLE,
        executable="jq",
        worker_args=("worker", "--import", "app", "--concurrency", "1"),
    ),
    Contestant(
        "pgqueuer",
        "pgqueuer",
        "pgqueuer 1.6 (asyncpg)",
        "`pgq run app:main` ×2: batch-size 10, dequeue-timeout 30 s, no concurrency limit",
        "PostgreSQL row (logged table)",
        needs=("pg",),
        executable="pgq",
        worker_args=("run", "app:main"),
        setup=(("pgq", "install"),),
    ),
    Contestant(
        "dramatiq",
        "dramatiq",
        "Dramatiq 2.2 (RabbitMQ)",
        "`dramatiq app --processes 2`: 8 threads a process, default middleware",
        "RabbitMQ durable queue, persistent message",
        needs=("amqp",),
        executable="dramatiq",
        worker_args=("app", "--processes", str(PROCESSES)),
        one_process_runs_all=True,
    ),
    Contestant(
        "celery",
        "celery",
        "Celery 5.7 (RabbitMQ)",
        "`celery -A app worker -c 2`: prefork, prefetch multiplier 4, early ack, no result backend",
        "RabbitMQ durable queue, persistent message",
        needs=("amqp",),
        executable="celery",
        worker_args=("-A", "app", "worker", "-c", str(PROCESSES)),
        one_process_runs_all=True,
    ),
    Contestant(
        "procrastinate",
        "procrastinate",
        "Procrastinate 3.10 (psycopg 3)",
        "`procrastinate --app=app.app worker` ×2: concurrency 1, LISTEN/NOTIFY",
        "PostgreSQL row",
        needs=("pg",),
        executable="procrastinate",
        worker_args=("--app=app.app", "worker"),
        setup=(("procrastinate", "--app=app.app", "schema", "--apply"),),
    ),
    Contestant(
        "rq",
        "rq",
        "RQ 3.0 (Redis)",
        "`rq worker` ×2: forks a work horse per job, result TTL 500 s",
        "Redis only (as durable as its AOF/RDB settings)",
        needs=("rq",),
        executable="rq",
        worker_args=("worker", "--url", "{rq_url}", "{queue}"),
    ),
]
BY_KEY = {c.key: c for c in CONTESTANTS}


def _url_with_path(url: str, path: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + path))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Space:
    """One contestant's private namespace: a database, a vhost or a Redis database of its own
    (jq: the usual Sandbox: a schema, queues, key prefix), the counter keys, the environment."""

    def __init__(self, contestant: Contestant, run_id: str, part: str = ""):
        self.contestant = contestant
        self.part = f"{contestant.key}{part}"
        self.name = f"bench_{run_id}_{self.part}"
        self.base = load_settings()
        self.run_id = run_id
        self.counter_prefix = f"jqbench:{run_id}:{self.part}"
        self.sandbox: Sandbox | None = None
        self._made: list[str] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("JQ_", "PG"))}
        self.env.update(
            PYTHONPATH=f"{PEERS_DIR / contestant.peer}{os.pathsep}{PEERS_DIR}",
            BENCH_REDIS_URL=self.base.redis_url,
            BENCH_QUEUE=self.name,
        )

    def __enter__(self) -> Space:
        try:
            self._make()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _make(self) -> None:
        needs = self.contestant.needs
        if self.contestant.peer == "jq":
            # shutdown_grace only shortens the stop between rows; nothing on the hot path
            self.sandbox = Sandbox(self.part, self.run_id, shutdown_grace=5.0)
            self.sandbox.__enter__()
            self._made.append("sandbox")
            self.env.update(self.sandbox.settings.as_environment())
        if "pg" in needs:
            with psycopg.connect(self.base.database_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self._made.append("pg")
            dsn = _url_with_path(self.base.database_url, self.name)
            self.env.update(BENCH_PG_DSN=dsn, PGDSN=dsn)
        if "amqp" in needs:
            _rabbitmqctl("add_vhost", self.name)
            self._made.append("amqp")
            user = urllib.parse.urlsplit(self.base.rabbitmq_url).username or "guest"
            _rabbitmqctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")
            self.env["BENCH_AMQP_URL"] = _url_with_path(self.base.rabbitmq_url, self.name)
        if "rq" in needs:
            url = _url_with_path(self.base.redis_url, str(RQ_DB))
            client = redis.Redis.from_url(url)
            try:
                if client.dbsize():
                    raise RuntimeError(
                        f"Redis database {RQ_DB} ({url}) is not empty; the bench uses it for RQ "
                        "alone (choose another with BENCH_RQ_REDIS_DB)"
                    )
            finally:
                client.close()
            self._made.append("rq")
            self.env["BENCH_RQ_REDIS_URL"] = url

    def worker_commands(self, bin_dir: Path) -> list[list[str]]:
        fill = {"rq_url": self.env.get("BENCH_RQ_REDIS_URL", ""), "queue": self.name}
        return [[a.format(**fill) for a in cmd] for cmd in self.contestant.worker_commands(bin_dir)]

    def counter(self, workload: str) -> str:
        return f"{self.counter_prefix}:{workload}"

    def __exit__(self, *exc: object) -> None:
        for made in reversed(self._made):
            with contextlib.suppress(Exception):  # remove what we can; report the rest below
                self._remove(made)
        self._made.clear()
        client = redis.Redis.from_url(self.base.redis_url)
        try:
            keys = list(client.scan_iter(match=self.counter_prefix + ":*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def _remove(self, made: str) -> None:
        if made == "sandbox" and self.sandbox is not None:
            self.sandbox.__exit__(None, None, None)
        elif made == "pg":
            with psycopg.connect(self.base.database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        elif made == "amqp":
            _rabbitmqctl("delete_vhost", self.name)
        elif made == "rq":
            client = redis.Redis.from_url(self.env["BENCH_RQ_REDIS_URL"])
            try:
                client.flushdb()  # our own database, checked empty before we used it
            finally:
                client.close()
