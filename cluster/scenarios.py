"""The scenarios of the cluster bed: the scaling figure, then the loss of each part in turn.

Each runs real `jq` daemons on the worker hosts (`ip netns exec`), submits through the CLI on
the services host, and reads its figures back from PostgreSQL with chaos.harness.Run, whose
accounting (lost, duplicate executions, jobs terminal twice) the chaos suite already trusts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.harness import JQ, Daemon, Figures, Run
from chaos.services import port_open, wait_until

from cluster.net import WORKER_HOSTS, Bed
from cluster.services import ServicesHost

IMPORTS = ("chaos.jobs", "cluster.jobs")
SCALE_CONCURRENCY = 2  # handler slots per host, the same on every host
SCALE_JOBS_PER_HOST = 400
SCALE_TRIALS = 3


class HostDaemon(Daemon):
    """A `jq worker` or `jq scheduler` on one worker host (`ip netns exec` execs, so the pid
    is the daemon's own)."""

    def __init__(
        self, role: str, name: str, args: list[str], env: dict, log_dir, prefix: list[str]
    ):
        self.role, self.name = role, name
        self.log_path = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            [*prefix, JQ, role, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),
        )
        self.pid = self.proc.pid


class ClusterRun(Run):
    def __init__(self, bed: Bed, services: ServicesHost, scenario: str, **settings: str):
        super().__init__(services, scenario)
        self.bed = bed
        self.env.update(settings)
        self.host_of: dict[str, int] = {}

    def worker_on(self, host: int, concurrency: int = 4) -> HostDaemon:
        name = f"w{len(self.daemons) + 1}h{host}"
        args = [a for m in IMPORTS for a in ("--import", m)]
        args += ["--concurrency", str(concurrency), "--name", f"{self.ns}-{name}"]
        d = HostDaemon(
            "worker", name, args, self.env, self.dir, self.bed.exec_prefix(self.bed.host(host))
        )
        self.daemons.append(d)
        self.host_of[d.name] = host
        return d.wait_ready(60)

    def scheduler_on(self, host: int) -> HostDaemon:
        name = f"s{len(self.daemons) + 1}h{host}"
        d = HostDaemon(
            "scheduler", name, [], self.env, self.dir, self.bed.exec_prefix(self.bed.host(host))
        )
        self.daemons.append(d)
        self.host_of[d.name] = host
        return d.wait_ready(60)

    def schedulers(self) -> list[HostDaemon]:
        return [d for d in self.daemons if d.role == "scheduler"]  # type: ignore[misc]

    def unfinished(self, pids: list[int] | None = None) -> int:
        """Executions running right now (on these daemons), as the handlers recorded them."""
        if pids is None:
            return self.query("SELECT count(*) FROM chaos_exec WHERE finished_at IS NULL")[0][0]
        return self.query(
            "SELECT count(*) FROM chaos_exec WHERE finished_at IS NULL AND pid = ANY(%s)", (pids,)
        )[0][0]

    @property
    def queue(self) -> str:
        return f"{self.ns}.default"


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    fn: Callable[[Bed, ServicesHost], dict]


def _steady(seconds: float, load) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and load.is_alive():
        time.sleep(0.1)


def _republished(run: ClusterRun) -> int:
    return sum(
        int(n)
        for d in run.schedulers()
        for n in re.findall(r"event=messages_republished \S+ count=(\d+)", d.log())
    )


def _result(f: Figures, **extra: object) -> dict:
    f.extra.update(extra)
    f.judge()
    out = {
        "scenario": f.scenario,
        "status": f.status,
        "accepted": f.accepted,
        "lost": f.lost,
        "multi_terminal": f.multi_terminal,
        "dup_exec": f.dup_exec,
        "dup_exec_bound": f.dup_exec_bound,
        "recovery_s": f.recovery_s,
        "failed_submits": f.failed_submits,
        **f.extra,
        "problems": f.problems,
    }
    out.pop("states", None)
    return out


# -- 1. scaling ------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(bed: Bed, services: ServicesHost, workers: list[Daemon]) -> dict[str, int]:
    """CPU ticks so far of the primary, the standby, the RabbitMQ nodes and the workers. A
    postmaster's reaped children (the CLI's short-lived backends) count through its cutime."""
    pms = {
        "pg_primary": services.pg.primary.postmaster_pid(),
        "pg_standby": services.pg.standby.postmaster_pid(),
    }
    ticks = dict.fromkeys([*pms, "rabbitmq", "workers"], 0)
    for pid in bed.pids(bed.svc):
        fields = _stat(pid)
        if fields is None:
            continue
        own = int(fields[11]) + int(fields[12])  # utime, stime
        for role, pm in pms.items():
            if pid == pm:
                ticks[role] += own + int(fields[13]) + int(fields[14])
            elif int(fields[1]) == pm:
                ticks[role] += own
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip().startswith("beam"):
                    ticks["rabbitmq"] += own
        except OSError:
            pass
    for w in workers:
        fields = _stat(w.pid)
        if fields is not None:
            ticks["workers"] += int(fields[11]) + int(fields[12])
    return ticks


def _drain(run, bed, services, workers, path, n: int, tick_ms: float) -> dict:
    """Submit one batch of n jobs at once and time it from its first start to its last end."""
    cpu0 = _cpu(bed, services, workers)
    wal0 = run.query("SELECT pg_current_wal_lsn()")[0][0]
    done = run.cli("submit", "--file", str(path), "--json", timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"submit failed: {done.stderr.strip()[:300]}")
    ids = json.loads(done.stdout)["ids"]
    if run.wait_quiet(300) is None:
        raise RuntimeError(f"{n} jobs not drained in 300 s")
    cpu1 = _cpu(bed, services, workers)
    ((span, wal_bytes, completed),) = run.query(
        "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::float8, "
        "count(*) FILTER (WHERE state = 'completed') FROM jobs WHERE id = ANY(%s)",
        (wal0, ids),
    )
    return {
        "jobs": n,
        "completed": completed,
        "seconds": round(span, 2),
        "jobs_per_s": round(n / span, 1),
        **{f"{k}_cpu_ms_per_job": round((cpu1[k] - cpu0[k]) * tick_ms / n, 3) for k in cpu0},
        "wal_bytes_per_job": round(wal_bytes / n),
    }


def scaling(bed: Bed, services: ServicesHost) -> dict:
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    rows: list[dict] = []
    problems: list[str] = []
    for hosts in range(1, WORKER_HOSTS + 1):
        run = ClusterRun(bed, services, f"scale{hosts}").setup()
        try:
            workers = [run.worker_on(h, SCALE_CONCURRENCY) for h in range(1, hosts + 1)]
            n = SCALE_JOBS_PER_HOST * hosts
            path = run.dir / "jobs.jsonl"
            path.write_text(
                "".join(
                    json.dumps({"job_type": "cluster_io", "payload": {}}) + "\n" for _ in range(n)
                )
            )
            trials = []
            for _ in range(SCALE_TRIALS):
                trials.append(_drain(run, bed, services, workers, path, n, tick_ms))
                if trials[-1]["completed"] != n:
                    problems.append(f"{hosts} hosts: {trials[-1]['completed']} of {n} completed")
            # The best of a few batches: on a machine shared with other work, the slowest batch
            # measures the neighbours, the fastest one comes nearest to what the hosts can do.
            best = max(trials, key=lambda t: t["jobs_per_s"])
            rows.append(
                {"hosts": hosts, **best, "trials_jobs_per_s": [t["jobs_per_s"] for t in trials]}
            )
            print(f"cluster:   {rows[-1]}", flush=True)
        finally:
            run.teardown()
    base = rows[0]["jobs_per_s"]
    for row in rows:
        row["efficiency"] = round(row["jobs_per_s"] / (base * row["hosts"]), 3)
    worst = min(r["efficiency"] for r in rows)
    if worst < 0.8:
        problems.append(f"efficiency {worst} < 0.8")
    pg_ms = max(r["pg_primary_cpu_ms_per_job"] for r in rows)
    whole = rows[-1]
    bed_ms = sum(
        whole[f"{k}_cpu_ms_per_job"] for k in ("pg_primary", "pg_standby", "rabbitmq", "workers")
    )
    return {
        "scenario": "scaling",
        "status": "fail" if problems else "pass",
        "concurrency_per_host": SCALE_CONCURRENCY,
        "job": "sleeps 20 ms",
        "rows": rows,
        "efficiency_min": worst,
        # PostgreSQL is the one writer every job passes through: its CPU per job bounds the total.
        "pg_cpu_ms_per_job": pg_ms,
        "pg_saturates_per_core_jobs_per_s": round(1000 / pg_ms) if pg_ms else None,
        "cores_here": os.cpu_count(),
        # Everything the bed spends per job on this one machine: its ceiling, whatever the hosts.
        "bed_cpu_ms_per_job": round(bed_ms, 3),
        "machine_ceiling_jobs_per_s": round(1000 * (os.cpu_count() or 1) / bed_ms)
        if bed_ms
        else None,
        "problems": problems,
    }


# -- 2. a RabbitMQ node dies, and a worker host loses one node --------------------------------------


def _loaded(run: ClusterRun, *, schedulers=(1, 2), sleep=(0.2, 0.8), backlog=60):
    for h in schedulers:
        run.scheduler_on(h)
    for h in range(1, WORKER_HOSTS + 1):
        run.worker_on(h, 4)
    load = run.workload(sleep=sleep)
    load.backlog(backlog)
    load.start()
    return load


def broker_kill(bed: Bed, services: ServicesHost) -> dict:
    run = ClusterRun(bed, services, "brokerkill").setup()
    rabbit = services.rabbit
    try:
        load = _loaded(run)
        _steady(4, load)
        home = rabbit.queue_home(run.queue)
        if home is None:
            raise RuntimeError(f"no node holds {run.queue}")
        workers = run.workers()
        before = {w.name: w.count("broker_reconnected") for w in workers}
        run.wait_in_flight(workers[0], 1, timeout=30)  # so the kill lands mid-job
        cut = run.unfinished()
        run.hit(cut, "in_flight_at_fault")  # the verdict: a fault must hit something
        t0 = time.monotonic()
        home.kill()
        wait_until(
            lambda: all(w.count("broker_reconnected") > before[w.name] for w in workers),
            120,
            "every worker to reconnect to another node",
        )
        moved_s = round(time.monotonic() - t0, 2)
        new_home = rabbit.queue_home(run.queue)
        _steady(6, load)
        run.fault_over()
        load.stop()
        f = run.measure(load, 120)
        f.dup_exec_bound = cut  # the executions in flight when their node died
        nodes = sorted({w.last("broker_reconnected").rsplit("node=", 1)[-1] for w in workers})
        return _result(
            f,
            killed=home.name,
            queue_now_on=new_home.name if new_home else None,
            workers_moved_to=nodes,
            workers_moved_s=moved_s,
            republished_by_sweeper=_republished(run),
        )
    finally:
        run.teardown()
        _revive(rabbit)


def _revive(rabbit) -> None:
    """Bring a killed node back (it rejoins from its own data) for the next scenario."""
    for node in rabbit.nodes:
        if node.proc is None:
            node.spawn()
            node.await_startup()


def _declare_elsewhere(rabbit, run: ClusterRun) -> str:
    """What a live node answers to a declare of the queue (as every worker does on connect)."""
    from jq_cli.broker import Publisher, _declare

    publisher = Publisher(rabbit.alive()[0].url, run.ns)
    try:
        _declare(publisher._open(), run.ns, "default")
        return "accepted"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        publisher.close()


def broker_kill_unmirrored(bed: Bed, services: ServicesHost) -> dict:
    """The same kill with the queue left unmirrored (a policy of higher priority without ha-mode):
    what the mirroring policy of the deployment guide is for."""
    run = ClusterRun(bed, services, "nomirror").setup()
    rabbit = services.rabbit
    first = rabbit.alive()[0]
    first.ctl(
        "set_policy", "--priority", "10", "jq-no-mirror", f"^{run.ns}\\.",
        '{"queue-mode":"default"}', "--apply-to", "queues",
    )  # fmt: skip
    try:
        load = _loaded(run, schedulers=(1,))
        _steady(4, load)
        home = rabbit.queue_home(run.queue)
        if home is None:
            raise RuntimeError(f"no node holds {run.queue}")
        workers = run.workers()
        run.wait_in_flight(workers[0], 1, timeout=30)
        before = {w.name: w.count("broker_reconnected") for w in workers}
        cut = run.unfinished()
        run.hit(cut, "in_flight_at_fault")  # the verdict: a fault must hit something
        t0_db = run.query("SELECT clock_timestamp()")[0][0]
        home.kill()
        down = 15.0
        refusal = _declare_elsewhere(rabbit, run)
        _steady(down, load)  # the outage itself: how long the node stays down is the scenario
        moved = sum(w.count("broker_reconnected") > before[w.name] for w in workers)
        ran_while_down = run.query(
            "SELECT count(*) FROM chaos_exec WHERE started_at > %s + interval '3 seconds'", (t0_db,)
        )[0][0]
        t1 = time.monotonic()
        home.spawn()
        home.await_startup()
        wait_until(
            lambda: all(w.count("broker_reconnected") > before[w.name] for w in workers),
            120,
            "every worker to reconnect once the queue's node is back",
        )
        back_s = round(time.monotonic() - t1, 2)
        _steady(3, load)
        run.fault_over()
        load.stop()
        f = run.measure(load, 120)
        f.dup_exec_bound = cut
        return _result(
            f,
            killed=home.name,
            down_s=down,
            workers_reconnected_while_down=moved,
            executions_started_while_down=ran_while_down,
            consuming_again_after_node_back_s=back_s,
            declare_on_live_node=refusal,
        )
    finally:
        run.teardown()
        _revive(rabbit)
        rabbit.alive()[0].ctl("clear_policy", "jq-no-mirror", check=False)


def broker_partition(bed: Bed, services: ServicesHost) -> dict:
    run = ClusterRun(bed, services, "brokerpart").setup()
    rabbit = services.rabbit
    victim_host = 2
    try:
        load = _loaded(run, schedulers=(1,))
        _steady(4, load)
        home = rabbit.queue_home(run.queue)
        if home is None:
            raise RuntimeError(f"no node holds {run.queue}")
        victims = [w for w in run.workers() if run.host_of[w.name] == victim_host]
        run.wait_in_flight(victims[0], 1, timeout=30)  # so the partition lands mid-job
        before = {w.name: w.count("broker_reconnected") for w in victims}
        cut = run.unfinished([w.pid for w in victims])
        run.hit(cut, "in_flight_at_fault")  # the verdict: a fault must hit something
        t0 = time.monotonic()
        bed.partition(victim_host, home.addr)
        try:
            # Nothing answers on the partitioned path: the AMQP heartbeat (30 s) notices.
            wait_until(
                lambda: all(w.count("broker_reconnected") > before[w.name] for w in victims),
                180,
                "the partitioned host's workers to reconnect to another node",
            )
            moved_s = round(time.monotonic() - t0, 2)
            nodes = sorted({w.last("broker_reconnected").rsplit("node=", 1)[-1] for w in victims})
            _steady(4, load)
        finally:
            bed.heal(victim_host, home.addr)
        run.fault_over()
        load.stop()
        f = run.measure(load, 150)
        f.dup_exec_bound = cut
        return _result(
            f,
            partitioned=f"w{victim_host} from {home.name} ({home.addr})",
            workers_moved_to=nodes,
            workers_moved_s=moved_s,
            republished_by_sweeper=_republished(run),
        )
    finally:
        run.teardown()


# -- 3. the PostgreSQL primary dies; the standby is promoted ----------------------------------------


def db_failover(bed: Bed, services: ServicesHost) -> dict:
    run = ClusterRun(bed, services, "dbfailover").setup()
    pg = services.pg
    try:
        load = _loaded(run)
        _steady(4, load)
        leaders = [s.name for s in run.schedulers() if s.count("leadership_acquired")]
        before = {d.name: _reconnects(d) for d in run.daemons}
        won_before = {s.name: s.count("leadership_acquired") for s in run.schedulers()}
        run.wait_in_flight(run.workers()[0], 1, timeout=30)  # so the kill lands mid-job
        cut = run.unfinished()
        run.hit(cut, "in_flight_at_fault")  # the verdict: a fault must hit something
        t0 = time.monotonic()
        pg.primary.kill()
        wait_until(lambda: not port_open(pg.primary.port, pg.primary.addr), 30, "the primary gone")
        # What a failover manager (Patroni, a managed service) does once it sees the primary gone.
        time.sleep(1.0)  # its detection delay, kept short here
        pg.promote()
        promoted_s = round(time.monotonic() - t0, 2)
        wait_until(
            lambda: all(_reconnects(d) > before[d.name] for d in run.daemons if d.alive),
            120,
            "every daemon to reconnect to the new primary",
        )
        reconnect_s = round(time.monotonic() - t0, 2)
        wait_until(
            lambda: any(
                s.count("leadership_acquired") > won_before[s.name] for s in run.schedulers()
            ),
            60,
            "a scheduler to lead again",
        )
        lead_s = round(time.monotonic() - t0, 2)
        new_leaders = [
            s.name for s in run.schedulers() if s.count("leadership_acquired") > won_before[s.name]
        ]
        _steady(4, load)
        run.fault_over()
        load.stop()
        f = run.measure(load, 120)
        f.dup_exec_bound = cut
        present = run.query("SELECT count(*) FROM jobs WHERE id = ANY(%s)", (load.accepted,))[0][0]
        if present != len(load.accepted):
            f.problems.append(
                f"{len(load.accepted) - present} accepted jobs missing after failover"
            )
        return _result(
            f,
            accepted_present=present,
            promoted_after_s=promoted_s,
            daemons_reconnected_s=reconnect_s,
            leader_before=leaders,
            leader_after=new_leaders,
            leadership_back_s=lead_s,
            now_primary=f"{pg.standby.addr}:{pg.standby.port}",
        )
    finally:
        run.teardown()


def _reconnects(d: Daemon) -> int:
    return d.count("database_reconnected") + d.count("service_reconnected")


# -- 4. a worker host cut off from everything for longer than the lease -----------------------------

CUTOFF_LEASE = 4.0


def host_cutoff(bed: Bed, services: ServicesHost) -> dict:
    run = ClusterRun(bed, services, "hostcutoff", JQ_LEASE_TTL=str(CUTOFF_LEASE))
    run.setup()
    victim_host = 3
    try:
        load = _loaded(run, schedulers=(1,), sleep=(1.0, 3.0), backlog=30)
        victim = next(w for w in run.workers() if run.host_of[w.name] == victim_host)
        run.wait_in_flight(victim, 2, timeout=30)
        worker_name = f"{run.ns}-{victim.name}"
        cut = run.unfinished([victim.pid])
        run.hit(cut, "in_flight_at_fault")  # the verdict: a fault must hit something
        t0 = time.monotonic()
        bed.cut(victim_host)
        try:
            # Its jobs: running under its name when the link went.
            held = [
                r[0]
                for r in run.query(
                    "SELECT job_id FROM attempts WHERE worker = %s AND outcome = 'running'",
                    (worker_name,),
                )
            ]
            wait_until(
                lambda: (
                    run.query(
                        "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state = 'completed' "
                        "AND worker IS DISTINCT FROM %s",
                        (held, worker_name),
                    )[0][0]
                    == len(held)
                ),
                120,
                "the cut-off host's jobs to be rescued and run elsewhere",
            )
            rescued_s = round(time.monotonic() - t0, 2)
            # Stay away a while longer, beyond several leases.
            while time.monotonic() - t0 < max(4 * CUTOFF_LEASE, rescued_s + 2):
                time.sleep(0.2)
        finally:
            bed.restore(victim_host)
        away_s = round(time.monotonic() - t0, 2)
        # Back: its handlers' records and its outcomes reach PostgreSQL now (and must be refused).
        wait_until(lambda: run.unfinished([victim.pid]) == 0, 120, "the returned host to settle")
        _steady(3, load)
        run.fault_over()
        load.stop()
        f = run.measure(load, 120)
        f.dup_exec_bound = cut
        stale = run.query(
            "SELECT count(*) FROM jobs j JOIN chaos_exec e ON e.id = (j.result->>'exec')::bigint "
            "WHERE j.id = ANY(%s) AND e.pid = %s",
            (held, victim.pid),
        )[0][0]
        stale_attempts = run.query(
            "SELECT count(*) FROM attempts WHERE job_id = ANY(%s) AND worker = %s "
            "AND outcome NOT IN ('lost', 'interrupted', 'cancelled')",
            (held, worker_name),
        )[0][0]
        if stale or stale_attempts:
            f.problems.append(
                f"stale outcomes recorded: {stale} results, {stale_attempts} attempts"
            )
        return _result(
            f,
            lease_s=CUTOFF_LEASE,
            jobs_held_by_cut_host=len(held),
            rescued_and_done_elsewhere_s=rescued_s,
            cut_for_s=away_s,
            stale_results=stale,
            stale_attempt_outcomes=stale_attempts,
            outcomes_refused_on_return=victim.count("outcome_ignored"),
        )
    finally:
        run.teardown()


SCENARIOS = [
    Scenario("scaling", "drain rate of 20 ms I/O jobs on 1, 2, 3 hosts", scaling),
    Scenario("broker_kill", "kill -9 of the RabbitMQ node holding the queue", broker_kill),
    Scenario(
        "broker_kill_unmirrored",
        "the same kill, the queue without mirrors",
        broker_kill_unmirrored,
    ),
    Scenario("broker_partition", "one worker host cut from the queue's node", broker_partition),
    Scenario("db_failover", "kill -9 of the PostgreSQL primary, standby promoted", db_failover),
    Scenario("host_cutoff", "a worker host cut off longer than the lease", host_cutoff),
]
