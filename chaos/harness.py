"""One scenario's run: its own namespace, real `jq` daemons, a workload submitted through the
CLI, and the figures read back from PostgreSQL once the queue is quiet."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Self

import psycopg

REPO = Path(__file__).resolve().parent.parent
JQ = str(Path(sys.executable).parent / "jq")  # by path: `jq` on PATH may be the JSON tool
TERMINAL = ("completed", "dead", "cancelled")

# Timings that let leases, sweeps and retries happen within a scenario's minute, in the same
# proportions as the defaults (a lease well above the daemons' reconnect back-off).
SETTINGS = {
    "JQ_LEASE_TTL": "10",
    "JQ_HEARTBEAT_INTERVAL": "0.5",
    "JQ_SCHEDULER_INTERVAL": "0.2",
    "JQ_REPUBLISH_AFTER": "3",
    "JQ_RETRY_BASE_DELAY": "0.2",
    "JQ_RETRY_MAX_DELAY": "2",
    "JQ_SHUTDOWN_GRACE": "3",
    "JQ_LOG_LEVEL": "INFO",
}
QUICK_SETTINGS = {**SETTINGS, "JQ_LEASE_TTL": "3", "JQ_REPUBLISH_AFTER": "1"}

SETUP_SQL = """
-- Every execution of the chaos job type, as the handler itself sees it: no deduplication.
CREATE TABLE {ns}.chaos_exec (
    id          bigserial PRIMARY KEY,
    job_id      bigint      NOT NULL,
    attempt     integer,
    pid         integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    outcome     text
);
-- Every statement that set a job's state (even to the same value), so a job that reaches a
-- terminal state twice is visible however it happened.
CREATE TABLE {ns}.chaos_transitions (
    id        bigserial PRIMARY KEY,
    job_id    bigint NOT NULL,
    old_state text,
    new_state text   NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION {ns}.chaos_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {ns}.chaos_transitions (job_id, old_state, new_state) VALUES (NEW.id, NULL, NEW.state);
    ELSE
        INSERT INTO {ns}.chaos_transitions (job_id, old_state, new_state) VALUES (NEW.id, OLD.state, NEW.state);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_transitions AFTER INSERT OR UPDATE OF state ON {ns}.jobs
    FOR EACH ROW EXECUTE FUNCTION {ns}.chaos_transition();
"""


@dataclass
class Figures:
    scenario: str
    status: str = "pass"  # pass | fail | skip
    lost: int | None = 0
    multi_terminal: int | None = 0
    dup_exec: int | None = 0
    dup_exec_bound: int | None = 0  # interruptions injected: executions cut by the fault
    # Jobs whose extra executions exceed the executions of that very job the fault cut: 0.
    dup_over: int | None = 0
    # Accepted jobs that ended, but not as their workload intended (a chaos_work job is meant to
    # complete: `dead` is a loss of its own kind): 0.
    wrong_end: int | None = 0
    # What the fault hit: jobs in flight at the fault, executions cut, sessions ended, messages
    # dead-lettered. A fault that hit nothing proves nothing: None or 0 fails the scenario.
    hits: int | None = None
    dup_ticks: int | None = None
    invalid_rows: int | None = 0
    recovery_s: float | None = None
    accepted: int = 0
    rejected: int = 0
    failed_submits: int = 0  # submits refused while a service was down (exit 3), not accepted
    elapsed_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def judge(self) -> Figures:
        if self.status == "skip":
            return self
        if not self.hits:
            self.problems.append(
                "the fault hit nothing (no job in flight, nothing cut): it proves nothing"
            )
        checks = [
            (self.lost, 0, "lost"),
            (self.wrong_end, 0, "wrong_end"),
            (self.dup_over, 0, "dup_over"),
            (self.multi_terminal, 0, "multi_terminal"),
            (self.dup_exec, self.dup_exec_bound, "dup_exec"),
            (self.invalid_rows, 0, "invalid_rows"),
            (self.dup_ticks, 0, "dup_ticks"),
        ]
        for value, limit, name in checks:
            if value is not None and limit is not None and value > limit:
                self.problems.append(f"{name} {value} > {limit}")
        self.status = "fail" if self.problems else "pass"
        return self

    def as_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=False)


class Daemon:
    """A real `jq worker` or `jq scheduler` process of ours, logging to a file."""

    def __init__(self, role: str, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.role, self.name = role, name
        self.log_path = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            [JQ, role, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, event: str) -> int:
        return len(re.findall(rf"event={event}\b", self.log()))

    def last(self, event: str) -> str:
        """The last log line of that event ('' if none)."""
        lines = [line for line in self.log().splitlines() if f"event={event}" in line]
        return lines[-1] if lines else ""

    def wait_ready(self, timeout: float = 30) -> Self:
        marker = "event=worker_started" if self.role == "worker" else "event=scheduler_started"
        deadline = time.monotonic() + timeout
        while marker not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log()[-2000:]}")
            time.sleep(0.1)
        return self

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 8) -> int | None:
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)  # a paused one must be able to hear SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


class Run:
    """One scenario in its own namespace on the given services."""

    def __init__(self, services, scenario: str, *, quick: bool = False, proxy=None):
        self.services = services
        self.scenario = scenario
        self.quick = quick
        self.ns = f"chaos_{re.sub(r'[^a-z0-9]', '', scenario)[:16]}_{uuid.uuid4().hex[:6]}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.ns}-", dir=services.root))
        self.direct_db = services.urls.database
        urls = services.urls
        if proxy is not None:
            self.proxy = proxy
            urls = type(urls)(
                re.sub(r":\d+/", f":{proxy.port('postgres')}/", urls.database),
                re.sub(r":\d+/", f":{proxy.port('rabbitmq')}/", urls.rabbitmq),
                re.sub(r":\d+/", f":{proxy.port('redis')}/", urls.redis),
            )
        else:
            self.proxy = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JQ_")}
        self.env.update(QUICK_SETTINGS if quick else SETTINGS)
        self.env.update(
            {
                "JQ_DATABASE_URL": urls.database,
                "JQ_RABBITMQ_URL": urls.rabbitmq,
                "JQ_REDIS_URL": urls.redis,
                "JQ_NAMESPACE": self.ns,
                "CHAOS_RECORD_URL": self.direct_db,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
                ),
            }
        )
        self.daemons: list[Daemon] = []
        self.hit_notes: dict[str, int] = {}
        # Jobs a scenario submitted itself, with the states each may rightly end in.
        self.intended: dict[int, tuple[str, ...]] = {}
        self.interrupted_pids: set[int] = set()
        self.stopped_pids: set[int] = set()  # stopped on purpose (SIGTERM): their exit is no crash
        self.fault_end: float | None = None
        self.fault_end_db = None
        self.started = time.monotonic()
        self._db: psycopg.Connection | None = None
        self.figures = Figures(scenario)

    # -- set-up and tear-down ------------------------------------------------------------------

    def setup(self) -> Self:
        done = self.cli("db", "migrate", env=self._direct_env())
        if done.returncode != 0:
            raise RuntimeError(f"jq db migrate failed: {done.stderr.strip()}")
        self.db().execute(SETUP_SQL.replace("{ns}", self.ns))
        return self

    def _direct_env(self) -> dict[str, str]:
        """The CLI's environment without the proxy (the runner's own bookkeeping)."""
        env = dict(self.env)
        env["JQ_DATABASE_URL"] = self.direct_db
        env["JQ_RABBITMQ_URL"] = self.services.urls.rabbitmq
        env["JQ_REDIS_URL"] = self.services.urls.redis
        return env

    def teardown(self) -> None:
        for d in self.daemons:
            with contextlib.suppress(Exception):  # stopping the rest matters more
                d.stop(5)
        if self._db is not None:
            self._db.close()
            self._db = None
        if not self.services.private:  # the shared services outlive us: leave nothing behind
            from jq_cli.broker import Publisher
            from jq_cli.observe.telemetry import Telemetry
            from jq_cli.store import Store

            try:
                store = Store(self.direct_db, self.ns)
                store.drop_namespace()
                store.close()
                pub = Publisher(self.services.urls.rabbitmq, self.ns)
                pub.delete_namespace_queues(["default"])
                pub.close()
                tel = Telemetry(self.services.urls.redis, self.ns)
                tel.delete_namespace()
                tel.close()
            except Exception as exc:
                print(f"chaos: clean-up of {self.ns} incomplete: {exc}", file=sys.stderr)

    # -- tools -----------------------------------------------------------------------------------

    def db(self) -> psycopg.Connection:
        """The runner's own direct connection (reconnects after a PostgreSQL fault)."""
        if self._db is None or self._db.closed or self._db.broken:
            self._db = psycopg.connect(
                self.direct_db,
                autocommit=True,
                connect_timeout=3,
                options=f"-c search_path={self.ns}",
            )
        return self._db

    def query(self, q: str, params=None, retries: int = 60) -> list[tuple]:
        for attempt in range(retries):
            try:
                cur = self.db().execute(q, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError:
                self._db = None
                if attempt == retries - 1:
                    raise
                time.sleep(0.5)
        return []

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 120, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [JQ, *args],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env or self.env,
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([JQ, *args], -1, "", f"timed out after {timeout}s")

    def start_worker(self, concurrency: int = 4, *args: str) -> Daemon:
        name = f"w{len(self.daemons) + 1}"
        d = Daemon(
            "worker",
            name,
            [
                "--import",
                "chaos.jobs",
                "--concurrency",
                str(concurrency),
                "--name",
                f"{self.ns}-{name}",
                *args,
            ],
            self.env,
            self.dir,
        )
        self.daemons.append(d)
        return d.wait_ready()

    def start_scheduler(self) -> Daemon:
        d = Daemon("scheduler", f"s{len(self.daemons) + 1}", [], self.env, self.dir)
        self.daemons.append(d)
        return d.wait_ready()

    def workers(self) -> list[Daemon]:
        return [d for d in self.daemons if d.role == "worker"]

    def in_flight(self, pid: int) -> int:
        return self.query(
            "SELECT count(*) FROM chaos_exec WHERE pid = %s AND finished_at IS NULL", (pid,)
        )[0][0]

    def wait_in_flight(self, daemon: Daemon, at_least: int = 1, timeout: float = 15) -> int:
        """Wait until the daemon is running handlers (so a fault lands mid-job)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.in_flight(daemon.pid)
            if n >= at_least:
                return n
            time.sleep(0.05)
        return self.in_flight(daemon.pid)

    def hit(self, n: int, what: str) -> None:
        """Record what a fault hit (in the figures' `hits` and, by kind, in extra["hit"])."""
        self.hit_notes[what] = self.hit_notes.get(what, 0) + n

    def fault_now(self, what: str, timeout: float = 10) -> int:
        """Just before a fault: wait (up to `timeout`) until some execution is in flight, so that
        the fault lands mid-job, and record how many were as what it hit."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.query("SELECT count(*) FROM chaos_exec WHERE finished_at IS NULL")[0][0]
            if n or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        self.hit(n, f"in_flight_at_{what}")
        return n

    def expect(self, ids: list[int], *states: str) -> None:
        """Jobs submitted by the scenario itself, and the terminal states they may rightly end in."""
        for i in ids:
            self.intended[i] = states

    def interrupt(self, daemon: Daemon, *signals_and_pauses) -> None:
        """Send signals (with pauses between, given as numbers) to a daemon; its cut executions
        become the bound of dup_exec."""
        self.hit(self.in_flight(daemon.pid), "in_flight_at_interrupt")
        self.interrupted_pids.add(daemon.pid)
        for item in signals_and_pauses:
            if isinstance(item, (int, float)) and not isinstance(item, signal.Signals):
                time.sleep(item)
            else:
                daemon.signal(item)

    def workload(self, **kwargs) -> Workload:
        return Workload(self, **kwargs)

    def expect_exit(self, daemon: Daemon) -> None:
        self.stopped_pids.add(daemon.pid)

    def fault_over(self) -> None:
        self.fault_end = time.monotonic()
        self.fault_end_db = self.query("SELECT now()")[0][0]

    # -- the end -------------------------------------------------------------------------------

    def wait_quiet(self, timeout: float = 60) -> float | None:
        """Wait until no job of the namespace is outside a terminal state; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            open_jobs = self.query(
                "SELECT count(*) FROM jobs WHERE state NOT IN ('completed', 'dead', 'cancelled')"
            )
            if open_jobs[0][0] == 0:
                return time.monotonic()
            time.sleep(0.25)
        return None

    def measure(self, load: Workload | None, quiet_timeout: float = 60) -> Figures:
        f = self.figures
        quiet = self.wait_quiet(quiet_timeout)
        if quiet is None:
            f.problems.append(f"queue not quiet after {quiet_timeout:.0f}s")
        elif self.fault_end is not None:
            f.recovery_s = round(max(0.0, quiet - self.fault_end), 2)
        accepted = [*(load.accepted if load else []), *self.intended]
        f.accepted = len(accepted)
        f.rejected = len(load.rejected) if load else 0
        f.failed_submits = len(load.failed) if load else 0
        terminal = {
            r[0]
            for r in self.query(
                "SELECT id FROM jobs WHERE id = ANY(%s) AND state IN ('completed', 'dead', 'cancelled')",
                (accepted,),
            )
        }
        f.lost = len(set(accepted) - terminal)
        ended = dict(self.query("SELECT id, state FROM jobs WHERE id = ANY(%s)", (list(terminal),)))
        f.wrong_end = sum(
            1 for i, state in ended.items() if state not in self.intended.get(i, ("completed",))
        )
        if f.wrong_end:
            f.extra["wrong_end_sample"] = sorted(
                (i, s) for i, s in ended.items() if s not in self.intended.get(i, ("completed",))
            )[:5]
        f.multi_terminal = self.query(
            "SELECT count(*) FROM (SELECT job_id FROM chaos_transitions WHERE new_state IN "
            "('completed', 'dead', 'cancelled') GROUP BY job_id HAVING count(*) > 1) t"
        )[0][0]
        f.dup_exec = self.query(
            "SELECT coalesce(sum(n - 1), 0)::int FROM (SELECT job_id, count(*) AS n FROM chaos_exec GROUP BY job_id) t"
        )[0][0]
        f.dup_exec_bound = self.query(
            "SELECT count(*) FROM chaos_exec WHERE pid = ANY(%s) AND (finished_at IS NULL OR outcome = 'cancelled')",
            (list(self.interrupted_pids),),
        )[0][0]
        f.dup_over = self.query(
            "SELECT count(*) FROM (SELECT job_id, count(*) AS n, count(*) FILTER (WHERE pid = ANY(%s) "
            "AND (finished_at IS NULL OR outcome = 'cancelled')) AS cut FROM chaos_exec "
            "GROUP BY job_id) t WHERE n - 1 > cut",
            (list(self.interrupted_pids),),
        )[0][0]
        if f.dup_exec_bound:
            self.hit(f.dup_exec_bound, "executions_cut")
        f.hits = sum(self.hit_notes.values())
        f.extra["hit"] = dict(self.hit_notes)
        f.invalid_rows = self.query(
            "SELECT count(*) FROM jobs WHERE payload ? 'chaos_reject' OR job_type = 'chaos_no_such_type'"
        )[0][0]
        by_state = dict(self.query("SELECT state, count(*) FROM jobs GROUP BY state"))
        f.extra["states"] = by_state
        f.extra["lease_rescues"] = self.query(
            "SELECT count(*) FROM attempts WHERE outcome = 'lost'"
        )[0][0]
        f.extra["never_ran"] = self.query(
            "SELECT count(*) FROM jobs j WHERE state = 'completed' AND job_type = 'chaos_work' AND NOT EXISTS "
            "(SELECT 1 FROM chaos_exec e WHERE e.job_id = j.id AND e.outcome = 'completed')"
        )[0][0]
        if f.extra["never_ran"]:
            f.problems.append(f"{f.extra['never_ran']} jobs completed without a finished execution")
        phantom = sum(d.count("unknown_job_message") for d in self.workers())
        f.extra["unknown_id_messages"] = phantom
        if self.fault_end_db is not None:
            first = self.query(
                "SELECT extract(epoch FROM min(started_at) - %s)::float8 FROM chaos_exec "
                "WHERE started_at > %s",
                (self.fault_end_db, self.fault_end_db),
            )[0][0]
            f.extra["resume_s"] = None if first is None else round(first, 2)
        crashed = [
            d.name
            for d in self.daemons
            if not d.alive and d.pid not in self.interrupted_pids | self.stopped_pids
        ]
        if crashed:
            f.problems.append(f"daemons exited on their own: {', '.join(crashed)}")
        if load is not None:
            wrong = [r for r in load.rejected if r[1] != 2]
            if wrong:
                f.problems.append(
                    f"{len(wrong)} rejected submits exited {sorted({r[1] for r in wrong})}, not 2"
                )
            unclear = [
                x for x in load.failed if x[0] != 3 or "Traceback" in x[1] or x[1].count("\n") > 1
            ]
            if unclear:
                f.problems.append(
                    f"{len(unclear)} failed submits were not one clear line with exit 3: "
                    f"{unclear[0][1][:160]!r}"
                )
            if load.failed:
                f.extra["failed_submit_sample"] = load.failed[0][1].strip()[:200]
        f.elapsed_s = round(time.monotonic() - self.started, 1)
        return f


REJECTS = ("bad_json", "unknown_type", "bad_priority", "bad_retries", "bad_queue", "bad_file_line")


class Workload(threading.Thread):
    """Submits chaos_work jobs through the CLI until stopped: single submits, --file batches, and
    a rejected submit every few steps. Keeps the ids the CLI reported as accepted."""

    def __init__(
        self,
        run: Run,
        *,
        sleep: tuple[float, float] = (0.1, 0.6),
        file_size: int = 8,
        pause: float = 0.05,
        reject_every: int = 3,
        max_retries: int = 5,
    ):
        super().__init__(name="workload", daemon=True)
        self.run_ = run
        self.sleep, self.file_size, self.pause, self.reject_every = (
            sleep,
            file_size,
            pause,
            reject_every,
        )
        self.max_retries = max_retries
        self.accepted: list[int] = []
        self.rejected: list[tuple[str, int, str]] = []
        self.failed: list[tuple[int, str]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._steps = 0

    def job(self, **extra) -> dict:
        return {
            "job_type": "chaos_work",
            "payload": {"sleep": round(random.uniform(*self.sleep), 3), **extra},
            "max_retries": self.max_retries,
        }

    def submit_file(self, jobs: list[dict]) -> subprocess.CompletedProcess:
        path = self.run_.dir / f"jobs-{uuid.uuid4().hex[:8]}.jsonl"
        path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
        return self.run_.cli("submit", "--file", str(path), "--json")

    def backlog(self, n: int) -> list[int]:
        """A batch submitted at once (through --file), e.g. the backlog a fault lands on."""
        done = self.submit_file([self.job() for _ in range(n)])
        return self._record(done, lambda out: json.loads(out)["ids"])

    def single(self) -> list[int]:
        j = self.job()
        done = self.run_.cli(
            "submit",
            "chaos_work",
            "--payload",
            json.dumps(j["payload"]),
            "--max-retries",
            str(self.max_retries),
        )
        return self._record(done, lambda out: [int(out.strip())])

    def _record(self, done: subprocess.CompletedProcess, parse) -> list[int]:
        if done.returncode == 0:
            ids = parse(done.stdout)
            with self._lock:
                self.accepted.extend(ids)
            return ids
        with self._lock:
            self.failed.append((done.returncode, done.stderr))
        return []

    def reject(self, kind: str) -> None:
        marker = {"chaos_reject": kind}
        payload = json.dumps(marker)
        if kind == "bad_json":
            done = self.run_.cli("submit", "chaos_work", "--payload", payload[:-1])
        elif kind == "unknown_type":
            done = self.run_.cli("submit", "chaos_no_such_type", "--payload", payload)
        elif kind == "bad_priority":
            done = self.run_.cli(
                "submit", "chaos_work", "--payload", payload, "--priority", "urgent"
            )
        elif kind == "bad_retries":
            done = self.run_.cli(
                "submit", "chaos_work", "--payload", payload, "--max-retries", "-1"
            )
        elif kind == "bad_queue":
            done = self.run_.cli(
                "submit", "chaos_work", "--payload", payload, "--queue", "no such queue!"
            )
        else:  # a file whose fourth line is bad: the good lines around it must not be written either
            jobs = [self.job(chaos_reject=kind) for _ in range(5)]
            jobs[3] = {"job_type": "chaos_work", "payload": marker, "priority": "bogus"}
            done = self.submit_file(jobs)
        with self._lock:
            if done.returncode == 3:  # refused before validation could finish: a service was down
                self.failed.append((done.returncode, done.stderr))
            else:
                self.rejected.append((kind, done.returncode, done.stderr.strip()[:200]))

    def step(self) -> None:
        self._steps += 1
        if self._steps % self.reject_every == 0:
            self.reject(REJECTS[(self._steps // self.reject_every) % len(REJECTS)])
        if self._steps % 3 == 0:
            done = self.submit_file([self.job() for _ in range(self.file_size)])
            self._record(done, lambda out: json.loads(out)["ids"])
        else:
            self.single()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.step()
            self.stopping.wait(self.pause)

    def stop(self) -> Workload:
        """Stop submitting; then make sure every kind of rejected input was tried at least once."""
        self.stopping.set()
        if self.is_alive():
            self.join(60)
        tried = {r[0] for r in self.rejected}
        for kind in REJECTS:
            if kind not in tried:
                self.reject(kind)
        return self
