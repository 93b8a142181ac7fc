"""The scenarios: each takes a fresh Run, starts daemons, submits a workload through the CLI,
injects one kind of fault, and leaves the measuring to Run.measure()."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.harness import Figures, Run, Workload
from chaos.scenarios_network import (
    blackholed_leader,
    blackholed_worker_amqp,
    blackholed_worker_pg,
    soak_big_table,
)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    fn: Callable[[Run], Figures]
    private_only: bool = False  # it stops or reconfigures a service: never on the shared ones
    proxy: bool = False


def _steady(run: Run, seconds: float, load) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if not load.is_alive():
            break


# -- 1. kill -9 of a worker mid-job ---------------------------------------------------------------


def _loaded(
    run: Run, *, sleep: tuple[float, float], backlog: int, concurrency: int = 4
) -> Workload:
    """The common stage of a scenario: a scheduler, two workers, a backlog, and a steady load."""
    run.start_scheduler()
    run.start_worker(concurrency)
    run.start_worker(concurrency)
    load = run.workload(sleep=sleep)
    load.backlog(backlog)
    load.start()
    return load


def kill9(run: Run) -> Figures:
    kills = 1 if run.quick else 3
    load = _loaded(run, sleep=(0.3, 1.5), backlog=12 if run.quick else 40)
    workers = run.workers()
    for i in range(kills):
        victim = workers[i % len(workers)]
        run.wait_in_flight(victim, 2)
        run.interrupt(victim, signal.SIGKILL)
        victim.proc.wait(5)
        workers[i % len(workers)] = run.start_worker()
        _steady(run, 0.5 if run.quick else 3, load)
    run.fault_over()
    load.stop()
    return run.measure(load, 30 if run.quick else 60)


# -- 2. SIGTERM: a graceful drain, and SIGTERM followed by SIGKILL a second later ------------------


def sigterm_drain(run: Run) -> Figures:
    load = _loaded(
        run, sleep=(0.2, 1.5), backlog=30
    )  # shorter than the 3 s grace: every job should finish
    workers = run.workers()
    for i in range(2):
        victim = workers[i]
        run.wait_in_flight(victim, 2)
        run.expect_exit(victim)
        run.hit(run.in_flight(victim.pid), "in_flight_at_sigterm")
        victim.signal(signal.SIGTERM)
        code = victim.proc.wait(15)
        if code != 0:
            run.figures.problems.append(f"{victim.name} exited {code} after SIGTERM, not 0")
        workers[i] = run.start_worker()
        _steady(run, 3, load)
    run.fault_over()
    load.stop()
    return run.measure(load)


def sigterm_kill(run: Run) -> Figures:
    rounds = 1 if run.quick else 2
    load = _loaded(
        run, sleep=(1.0, 3.0), backlog=10 if run.quick else 24
    )  # long enough to be cut by the SIGKILL
    workers = run.workers()
    for i in range(rounds):
        victim = workers[i % 2]
        run.wait_in_flight(victim, 2)
        run.interrupt(victim, signal.SIGTERM, 1.0, signal.SIGKILL)
        victim.proc.wait(5)
        workers[i % 2] = run.start_worker()
        _steady(run, 0.5 if run.quick else 3, load)
    run.fault_over()
    load.stop()
    return run.measure(load, 30 if run.quick else 60)


# -- 3. RabbitMQ: stop_app for 30 s under load; a full restart with a backlog -----------------------


def _workers_reconnected(run: Run, since_s: float) -> None:
    """Every worker still alive ran a job after the broker came back (it reconnected by itself)."""
    for w in run.workers():
        if not w.alive:
            continue
        n = run.query(
            "SELECT count(*) FROM chaos_exec WHERE pid = %s AND started_at > now() - make_interval(secs => %s)",
            (w.pid, since_s),
        )[0][0]
        run.figures.extra.setdefault("runs_after_fault", {})[w.name] = n
        if n == 0:
            run.figures.problems.append(
                f"{w.name} ran nothing after the fault: it did not reconnect"
            )


def _recovered(run: Run, load: Workload, settle: float, quiet_timeout: float = 60) -> Figures:
    """The end of a service outage: the fault is over, the load runs `settle` seconds more, the queue
    goes quiet, and every live worker must have run a job since the service came back."""
    run.fault_over()
    back = time.monotonic()
    _steady(run, settle, load)
    load.stop()
    figures = run.measure(load, quiet_timeout)
    _workers_reconnected(run, time.monotonic() - back)
    return figures


def rabbit_stop_app(run: Run) -> Figures:
    rabbit = run.services.rabbit
    load = _loaded(run, sleep=(0.1, 0.5), backlog=30)
    _steady(run, 4, load)
    before = len(load.accepted)
    run.fault_now("stop_app")
    rabbit.stop_app()
    _steady(run, 30, load)
    run.figures.extra["accepted_during_outage"] = len(load.accepted) - before
    rabbit.start_app()
    return _recovered(run, load, 2)


def rabbit_restart(run: Run) -> Figures:
    rabbit = run.services.rabbit
    # a backlog far more than two small workers clear before the broker goes
    load = _loaded(run, sleep=(0.2, 0.8), backlog=150, concurrency=2)
    _steady(run, 3, load)
    before = len(load.accepted)
    run.fault_now("rabbit_stop")
    rabbit.stop()  # the whole node halts: connections drop, queues come back from disk
    _steady(run, 8, load)
    run.figures.extra["accepted_during_outage"] = len(load.accepted) - before
    rabbit.start()
    rabbit.eval("application:set_env(rabbit, channel_tick_interval, 1000).")
    return _recovered(run, load, 2, 75)


# -- 4. PostgreSQL: restarted in immediate mode under load; its jq sessions terminated --------------


def pg_restart(run: Run) -> Figures:
    pg = run.services.postgres
    load = _loaded(run, sleep=(0.2, 1.0), backlog=30)
    _steady(run, 4, load)
    run.fault_now("pg_stop")
    pg.stop(
        "immediate"
    )  # every backend dies at once, no checkpoint: what restart -m immediate does
    _steady(run, 5, load)  # held down a few seconds so that the CLI meets it down
    pg.start_again()
    figures = _recovered(run, load, 3)
    if not load.failed:
        figures.problems.append("no submit met the database down: the fault missed the CLI")
    return figures


def pg_terminate(run: Run) -> Figures:
    run.start_scheduler()
    load = _loaded(run, sleep=(0.2, 1.0), backlog=30)
    killed = 0
    for _ in range(5):
        _steady(run, 2.5, load)
        run.fault_now("terminate")
        killed += len(
            run.query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'jq-%%' AND pid <> pg_backend_pid()"
            )
        )
    run.figures.extra["sessions_terminated"] = killed
    run.hit(killed, "sessions_terminated")
    figures = _recovered(run, load, 3)
    leaders = run.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")[0][
        0
    ]
    figures.extra["advisory_locks_held"] = leaders
    return figures


# -- 5. Redis stopped for a minute ----------------------------------------------------------------


def _rate(run: Run, start_ago: float, end_ago: float) -> float:
    n = run.query(
        "SELECT count(*) FROM chaos_exec WHERE outcome = 'completed' AND finished_at "
        "BETWEEN now() - make_interval(secs => %s) AND now() - make_interval(secs => %s)",
        (start_ago, end_ago),
    )[0][0]
    return round(n / max(0.1, start_ago - end_ago), 1)


def redis_stop(run: Run) -> Figures:
    redis = run.services.redis
    run.start_scheduler()
    run.start_worker()
    run.start_worker()
    load = run.workload(sleep=(0.05, 0.3), file_size=12, pause=0.0)
    load.start()
    _steady(run, 8, load)
    before = _rate(run, 6, 0)
    run.fault_now("redis_stop")
    redis.stop()
    down_at = time.monotonic()
    _steady(run, 60, load)
    during = _rate(run, time.monotonic() - down_at - 2, 0)
    redis.start()
    run.fault_over()
    load.stop()
    figures = run.measure(load)
    figures.extra["completed_per_s_before"] = before
    figures.extra["completed_per_s_while_down"] = during
    if figures.extra["lease_rescues"]:
        figures.problems.append(
            f"{figures.extra['lease_rescues']} jobs rescued by lease expiry while Redis was down"
        )
    if before and during < 0.5 * before:
        figures.problems.append(f"throughput fell from {before}/s to {during}/s without Redis")
    return figures


# -- 6. slow and broken connections through the fault proxy ---------------------------------------


def proxy_latency(run: Run) -> Figures:
    load = _loaded(run, sleep=(0.1, 0.5), backlog=30)
    run.wait_in_flight(run.workers()[0], 1)
    run.fault_now("latency")
    run.proxy.set_latency(0.02, 0.03)
    _steady(run, 20, load)
    run.proxy.set_latency(0, 0)
    run.fault_over()
    load.stop()
    return run.measure(load)


def proxy_stall(run: Run) -> Figures:
    load = _loaded(run, sleep=(0.2, 1.0), backlog=30)
    for _ in range(2):
        _steady(run, 4, load)
        run.fault_now("stall")
        run.proxy.stall(True)  # every packet dropped, to all three services, for 5 s
        time.sleep(5)
        run.proxy.stall(False)
    run.fault_over()
    _steady(run, 2, load)
    load.stop()
    return run.measure(load)


def proxy_reset(run: Run) -> Figures:
    load = _loaded(run, sleep=(0.2, 1.0), backlog=30)
    resets = 0
    for _ in range(5):
        _steady(run, 2.5, load)
        run.fault_now("reset")
        resets += run.proxy.reset_all(refuse=True)  # RST every connection, refuse new ones for 1 s
        time.sleep(1)
        run.proxy.reset_all(refuse=False)
    run.figures.extra["connections_reset"] = resets
    run.hit(resets, "connections_reset")
    run.fault_over()
    _steady(run, 2, load)
    load.stop()
    return run.measure(load)


# -- 7. two and three schedulers, many every-second schedules, the leader paused ------------------


def schedulers(run: Run) -> Figures:
    from jq_cli.client import Client

    probe = run.cli("schedule", "add", "--help")
    if not hasattr(Client, "schedule_add") or probe.returncode != 0:
        f = run.figures
        f.status = "fail"  # jq has schedules: their absence is a regression, never a skip
        f.lost = f.multi_terminal = f.dup_exec = f.dup_exec_bound = f.invalid_rows = None
        f.problems.append(
            "needs cron schedules (`jq schedule add NAME TYPE --cron ...` / "
            "Client.schedule_add): not in this jq yet"
        )
        return f
    run.start_worker(8)
    run.start_worker(8)
    n = 20
    for i in range(n):
        done = run.cli(
            "schedule",
            "add",
            f"tick{i:02d}",
            "chaos_work",
            "--cron",
            "* * * * * *",
            "--payload",
            '{"sleep": 0}',
        )
        if done.returncode != 0:
            run.figures.problems.append(f"schedule add failed: {done.stderr.strip()[:200]}")
            break
    scheds = [run.start_scheduler(), run.start_scheduler()]
    load = run.workload(sleep=(0.05, 0.2))
    load.backlog(10)
    time.sleep(6)
    scheds.append(run.start_scheduler())
    time.sleep(5)
    leader = _leader(run, scheds)
    run.figures.extra["leader"] = leader.name if leader else None
    if leader is None:
        run.figures.problems.append("no scheduler holds the leader lock")
    else:
        run.hit(1, "leader_paused")
        leader.signal(signal.SIGSTOP)
        time.sleep(15)  # well past any lease or lock timeout a leader holds
        leader.signal(signal.SIGCONT)
        run.figures.extra["leader_after_pause"] = getattr(_leader(run, scheds), "name", None)
    time.sleep(6)
    run.query("UPDATE schedules SET enabled = false")
    run.fault_over()
    load.backlog(5)
    load.stop()
    figures = run.measure(load)
    figures.dup_ticks = run.query(
        "SELECT count(*) - count(DISTINCT (schedule_name, fire_time)) FROM jobs WHERE fire_time IS NOT NULL"
    )[0][0]
    per_tick = run.query(
        "SELECT coalesce(sum(n - 1), 0)::int FROM (SELECT j.schedule_name, j.fire_time, count(e.id) AS n FROM jobs j "
        "JOIN chaos_exec e ON e.job_id = j.id WHERE j.fire_time IS NOT NULL GROUP BY 1, 2) t"
    )[0][0]
    figures.dup_ticks += per_tick
    figures.extra["ticks"] = run.query("SELECT count(*) FROM jobs WHERE fire_time IS NOT NULL")[0][
        0
    ]
    # Seconds between first and last tick of a schedule with no tick: what the pause cost.
    gaps = run.query(
        "SELECT coalesce(sum(extract(epoch FROM last - first)::int + 1 - n), 0)::int, "
        "coalesce(max(gap), 0)::float8 FROM (SELECT schedule_name, min(fire_time) AS first, max(fire_time) AS last, "
        "count(*) AS n, max(extract(epoch FROM gap)) AS gap FROM (SELECT schedule_name, fire_time, fire_time - "
        "lag(fire_time) OVER (PARTITION BY schedule_name ORDER BY fire_time) AS gap FROM jobs "
        "WHERE fire_time IS NOT NULL) g GROUP BY schedule_name) t"
    )[0]
    figures.extra["ticks_missed"], figures.extra["longest_gap_s"] = gaps[0], gaps[1]
    figures.extra["schedulers"] = len(scheds)
    return figures


def _leader(run: Run, scheds):
    """The scheduler that holds the leader lease, found in Postgres: its name ends with the
    process id."""
    rows = run.query(
        "SELECT holder FROM leaders WHERE role = 'scheduler' AND leader_until >= now()"
    )
    pids = {int(r[0].rsplit(":", 1)[1]) for r in rows if r[0].rsplit(":", 1)[-1].isdigit()}
    return next((s for s in scheds if s.pid in pids), None)


# -- 8. a job longer than RabbitMQ's consumer timeout ---------------------------------------------


def consumer_timeout(run: Run) -> Figures:
    rabbit = run.services.rabbit
    rabbit.eval("application:set_env(rabbit, consumer_timeout, 5000).")
    try:
        run.start_scheduler()
        worker = run.start_worker(2)
        load = run.workload(sleep=(12, 12))
        long_ids = load.backlog(2)
        load.sleep = (0.1, 0.3)
        load.backlog(6)  # delivered while both slots are busy: they wait unacknowledged past 5 s
        time.sleep(14)
        run.hit(worker.count("broker_unavailable"), "channels_closed_by_consumer_timeout")
        run.hit(len(long_ids), "jobs_longer_than_consumer_timeout")
        run.fault_over()
        load.stop()
        figures = run.measure(load)
        runs = run.query(
            "SELECT job_id, count(*) FROM chaos_exec WHERE job_id = ANY(%s) GROUP BY job_id",
            (long_ids,),
        )
        figures.extra["long_job_runs"] = {str(k): v for k, v in runs}
        figures.extra["channel_closures"] = worker.count("broker_unavailable")
        if any(v != 1 for _, v in runs) or len(runs) != len(long_ids):
            figures.problems.append(
                f"a job longer than consumer_timeout did not run exactly once: {runs}"
            )
        return figures
    finally:
        rabbit.eval("application:set_env(rabbit, consumer_timeout, 1800000).")


# -- 9. poison messages straight to the queue ------------------------------------------------------


def poison(run: Run) -> Figures:
    from jq_cli.broker import Publisher

    worker = run.start_worker()
    run.start_scheduler()
    load = run.workload(sleep=(0.05, 0.2))
    good = load.backlog(10)
    run.wait_quiet(20)
    publisher = Publisher(run.services.urls.rabbitmq, run.ns)
    noid = [
        b"not json at all",
        b'{"job_id": "nope"}',
        b"",
        b"\xff\xfe\xfa\x80 invalid utf-8",
        b"-5",
        b"0",
        b"9" * 25,
        b"12abc",
        b"\x00\x01\x02",
    ]
    unknown = [b"987654321", b"123456789012"]
    stale = [str(good[0]).encode()]  # a completed job's id again: a duplicate, not work
    huge = {f"h{i:03d}": "x" * 1000 for i in range(100)}  # ~100 KB of headers
    sent_noid = 0
    for _rounds in range(1 if run.quick else 3):
        for body in noid:
            publisher.publish_raw("default", body)
            sent_noid += 1
        for body in unknown + stale:
            publisher.publish_raw("default", body)
        publisher.publish_raw("default", b"garbage with huge headers", headers=huge)
        sent_noid += 1
        publisher.publish_raw("default", b"42424242", headers=huge)
        load.backlog(5)  # good jobs keep flowing between the poison
    load.single()
    load.stop()  # not started as a thread: this only submits the rejected inputs
    run.fault_over()
    figures = run.measure(load, 30)
    time.sleep(0.5)
    depths = publisher.queue_depths(["default", "_poison"])
    figures.hits = (figures.hits or 0) + (depths.get("_poison") or 0)
    figures.extra["hit"]["poison_dead_lettered"] = depths.get("_poison") or 0
    publisher.close()
    figures.extra["poison_dead_lettered"] = depths.get("_poison")
    figures.extra["queue_left"] = depths.get("default")
    figures.extra["worker_poison_events"] = worker.count("poison_message")
    if not worker.alive:
        figures.problems.append("the worker died on poison messages")
    if depths.get("default"):
        figures.problems.append(
            f"{depths['default']} messages still in the queue: looping or stuck"
        )
    if depths.get("_poison") != sent_noid:
        figures.problems.append(
            f"{depths.get('_poison')} messages dead-lettered, expected {sent_noid}"
        )
    return figures


# -- 10. poison jobs: what a handler returns, raises, ignores or hangs in ----------------------

# kind: (job type, payload, extra CLI options, the terminal state it must reach, attempt outcome)
POISON_JOBS = {
    "poison_nan": ("chaos_nan", {}, [], "dead", "failed"),
    "poison_validator": ("chaos_picky", {"n": -1}, [], "dead", "failed"),
    "ignore_cancel": ("chaos_ignore_cancel", {"seconds": 120}, [], "cancelled", "cancelled"),
    "hung_time_limit": ("chaos_hang", {"seconds": 120}, ["--time-limit", "1s"], "dead", "timeout"),
}


def _poison_job(run: Run, kind: str) -> Figures:
    job_type, payload, options, state, outcome = POISON_JOBS[kind]
    run.start_scheduler()
    workers = [run.start_worker(2), run.start_worker(2)]
    load = run.workload(sleep=(0.05, 0.3))
    load.backlog(10)
    load.start()
    ids = []
    for _ in range(2 if run.quick else 4):
        done = run.cli(
            "submit", job_type, "--payload", json.dumps(payload), "--max-retries", "0", *options
        )
        if done.returncode != 0:
            run.figures.problems.append(f"submit of {job_type} failed: {done.stderr.strip()[:200]}")
            continue
        ids.append(int(done.stdout.strip()))
    run.expect(ids, state)
    if kind == "ignore_cancel":
        _wait_running(run, ids)
        run.fault_now("cancel")
        cancelled_at = time.monotonic()
        run.cli("cancel", *map(str, ids))
        ended = _wait_ended(run, ids, 30)
        run.figures.extra["cancel_took_s"] = round(time.monotonic() - cancelled_at, 1)
        if not ended:
            run.figures.problems.append(
                "cancelled jobs that ignore cancellation did not end in 30 s"
            )
    elif kind == "hung_time_limit":
        _wait_running(run, ids)
        run.fault_now("hang")
    else:
        _wait_ended(run, ids, 30)
        run.hit(len(ids), "poison_jobs_run")
    _steady(run, 2 if run.quick else 5, load)
    run.fault_over()
    load.stop()
    figures = run.measure(load, 45)
    wrong = run.query(
        "SELECT count(*) FROM attempts WHERE job_id = ANY(%s) AND outcome <> %s", (ids, outcome)
    )[0][0]
    figures.extra["poison_attempt_outcomes"] = dict(
        run.query(
            "SELECT outcome, count(*) FROM attempts WHERE job_id = ANY(%s) GROUP BY 1", (ids,)
        )
    )
    if wrong:
        figures.problems.append(f"{wrong} attempts of {job_type} did not end {outcome}")
    for w in workers:  # the worker that met the poison drains and exits 0
        run.expect_exit(w)
        code = w.stop(20)
        if code != 0:
            figures.problems.append(f"{w.name} exited {code} after SIGTERM, not 0")
    return figures


def _wait_running(run: Run, ids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = run.query("SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state = 'running'", (ids,))
        if n[0][0] == len(ids):
            return
        time.sleep(0.1)


def _wait_ended(run: Run, ids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = run.query(
            "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state IN ('completed', 'dead', 'cancelled')",
            (ids,),
        )
        if n[0][0] == len(ids):
            return True
        time.sleep(0.1)
    return False


def poison_nan(run: Run) -> Figures:
    return _poison_job(run, "poison_nan")


def poison_validator(run: Run) -> Figures:
    return _poison_job(run, "poison_validator")


def ignore_cancel(run: Run) -> Figures:
    return _poison_job(run, "ignore_cancel")


def hung_time_limit(run: Run) -> Figures:
    return _poison_job(run, "hung_time_limit")


SCENARIOS = [
    Scenario("kill9", "kill -9 of a worker mid-job, 3 times", kill9),
    Scenario("sigterm_drain", "SIGTERM during jobs: a graceful drain, twice", sigterm_drain),
    Scenario("sigterm_kill", "SIGTERM then SIGKILL a second later, twice", sigterm_kill),
    Scenario(
        "rabbit_stop_app",
        "RabbitMQ stop_app for 30 s under load",
        rabbit_stop_app,
        private_only=True,
    ),
    Scenario(
        "rabbit_restart", "RabbitMQ node restart with a backlog", rabbit_restart, private_only=True
    ),
    Scenario(
        "pg_restart", "PostgreSQL stopped (immediate) 5 s under load", pg_restart, private_only=True
    ),
    Scenario(
        "pg_terminate",
        "pg_terminate_backend of jq sessions, 5 times",
        pg_terminate,
        private_only=True,
    ),
    Scenario("redis_stop", "Redis stopped for a minute", redis_stop, private_only=True),
    Scenario(
        "proxy_latency", "20-50 ms added to every chunk, all services", proxy_latency, proxy=True
    ),
    Scenario("proxy_stall", "all traffic dropped 5 s, twice", proxy_stall, proxy=True),
    Scenario("proxy_reset", "every connection reset, 5 times", proxy_reset, proxy=True),
    Scenario(
        "schedulers", "2 then 3 schedulers, leader paused 15 s", schedulers, private_only=True
    ),
    Scenario(
        "consumer_timeout",
        "jobs of 12 s with consumer_timeout 5 s",
        consumer_timeout,
        private_only=True,
    ),
    Scenario("poison", "poison messages straight to the queue", poison),
    Scenario("poison_nan", "handlers returning NaN beside healthy jobs", poison_nan),
    Scenario("poison_validator", "a payload validator raising KeyError", poison_validator),
    Scenario("ignore_cancel", "jq cancel of handlers that ignore it", ignore_cancel),
    Scenario("hung_time_limit", "handlers blocked past a 1 s time limit", hung_time_limit),
    # Issue 14 (chaos/scenarios_network.py): one daemon's own route blackholed, and a soak.
    Scenario("blackholed_leader", "the leader's PostgreSQL route stalled 10 s+", blackholed_leader),
    Scenario(
        "blackholed_worker_pg", "a worker's PostgreSQL route stalled 20 s", blackholed_worker_pg
    ),
    Scenario(
        "blackholed_worker_amqp", "a worker's AMQP route stalled 20 s", blackholed_worker_amqp
    ),
    Scenario("soak_big_table", "steady load over 3M finished jobs", soak_big_table),
]
BY_NAME = {s.name: s for s in SCENARIOS}
