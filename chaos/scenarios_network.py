"""Network scenarios of issue 14: one daemon's route blackholed (its own FaultProxy, stalled: the
proxy's kernel still acknowledges every byte, so only jq's own deadlines and leases notice), and a
soak over a table pre-filled with millions of finished jobs."""

from __future__ import annotations

import re
import statistics
import threading
import time
from typing import Any

from chaos.harness import Daemon, Figures, Run
from chaos.proxy import FaultProxy


def _port(url: str) -> int:
    match = re.search(r":(\d+)/", url)
    return int(match.group(1)) if match else 5432


def _via(proxy: FaultProxy, url: str, route: str) -> str:
    return re.sub(r":\d+/", f":{proxy.port(route)}/", url, count=1)


def _own_route(run: Run, role: str, service: str, args: list[str]) -> tuple[Daemon, FaultProxy]:
    """A daemon whose route to one service (postgres or rabbitmq) goes through a proxy of its own,
    every other route direct."""
    urls = run.services.urls
    target = urls.database if service == "postgres" else urls.rabbitmq
    proxy = FaultProxy({service: _port(target)}).start()
    env = dict(run.env)
    key = "JQ_DATABASE_URL" if service == "postgres" else "JQ_RABBITMQ_URL"
    env[key] = _via(proxy, target, service)
    name = f"{role[0]}{len(run.daemons) + 1}-cut"
    if role == "worker":
        args = [*args, "--name", f"{run.ns}-{name}"]
    daemon = Daemon(role, name, args, env, run.dir)
    run.daemons.append(daemon)
    return daemon.wait_ready(), proxy


def _holder(run: Run) -> str | None:
    rows = run.query(
        "SELECT holder FROM leaders WHERE role = 'scheduler' AND leader_until >= now()"
    )
    return rows[0][0] if rows else None


def _pid_of(holder: str | None) -> int | None:
    tail = (holder or "").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _stuck(run: Run) -> int:
    rows = run.query(
        "SELECT count(*) FROM jobs WHERE state NOT IN ('completed', 'dead', 'cancelled')"
    )
    return int(rows[0][0])


def _wait(predicate, timeout: float) -> float | None:
    """Seconds until predicate() held, or None if it did not within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return round(time.monotonic() - started, 2)
        time.sleep(0.2)
    return None


# -- the scheduler leader's route to PostgreSQL blackholed -----------------------------------------


def blackholed_leader(run: Run) -> Figures:
    cut, proxy = _own_route(run, "scheduler", "postgres", [])
    try:
        if _wait(lambda: _pid_of(_holder(run)) == cut.pid, 30) is None:
            run.figures.problems.append("the scheduler behind the proxy never led")
        standby = run.start_scheduler()
        run.start_worker(4)
        load = run.workload(sleep=(0.1, 0.5))
        load.backlog(10)
        load.start()
        time.sleep(2)
        # What the stall hits is the leadership: the leader's duties stop with its route.
        if _pid_of(_holder(run)) == cut.pid:
            run.hit(1, "leader_at_stall")
        proxy.stall(True)
        took_over = _wait(lambda: _pid_of(_holder(run)) == standby.pid, 60)
        run.figures.extra["standby_leads_after_s"] = took_over
        if took_over is None or took_over > 30:
            run.figures.problems.append(f"the standby led only after {took_over} s (limit 30)")
        time.sleep(5)  # the delayed and retried jobs of the load need the new leader meanwhile
        proxy.stall(False)
        run.fault_over()
        time.sleep(3)
        back = _pid_of(_holder(run))
        run.figures.extra["leader_after_return"] = "standby" if back == standby.pid else back
        if back == cut.pid:
            run.figures.problems.append("the blackholed leader took the lead back on its return")
        run.figures.extra["leadership_lost_logged"] = cut.count("leadership_lost") + cut.count(
            "database_stalled"
        )
        load.stop()
        figures = run.measure(load)
        figures.extra["stuck"] = _stuck(run)
        return figures
    finally:
        proxy.stall(False)
        proxy.stop()


# -- a worker's route to PostgreSQL, or to RabbitMQ, blackholed ------------------------------------


def _blackholed_worker(run: Run, service: str) -> Figures:
    run.start_scheduler()
    cut, proxy = _own_route(
        run, "worker", service, ["--import", "chaos.jobs", "--concurrency", "4"]
    )
    try:
        run.start_worker(4)
        load = run.workload(sleep=(0.3, 1.5))
        load.backlog(30)
        load.start()
        run.hit(run.wait_in_flight(cut, 1), "in_flight_on_the_cut_worker")
        proxy.stall(True)
        held = 20 if not run.quick else 8  # beyond the lease: its jobs must be rescued meanwhile
        time.sleep(held)
        run.figures.extra["stalled_s"] = held
        proxy.stall(False)
        run.fault_over()
        time.sleep(3)
        load.stop()
        figures = run.measure(load)
        # A job the cut-off worker ran but could not report is rescued after its lease and runs
        # again (at least once): each rescue may cost one execution, never more.
        rescues = int(figures.extra.get("lease_rescues") or 0)
        figures.dup_exec_bound = max(figures.dup_exec_bound or 0, rescues)
        # dup_over counts jobs run more often than their cut executions explain; the cut-off
        # worker's runs finished (it was not killed) and were rescued: one each is explained.
        figures.dup_over = max(0, (figures.dup_over or 0) - rescues)
        figures.extra["stuck"] = _stuck(run)
        return figures
    finally:
        proxy.stall(False)
        proxy.stop()


def blackholed_worker_pg(run: Run) -> Figures:
    return _blackholed_worker(run, "postgres")


def blackholed_worker_amqp(run: Run) -> Figures:
    return _blackholed_worker(run, "rabbitmq")


# -- a steady load over millions of finished jobs --------------------------------------------------


def _percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2)}


def soak_big_table(run: Run) -> Figures:
    from jq_cli.config import load_settings
    from jq_cli.scheduler.daemon import Scheduler
    from jq_cli.store import Store, job_count_created_per_second

    rows = 200_000 if run.quick else 3_000_000
    run.query(
        # Finished days ago, so retention keeps them: the table the duties must not scan. A type
        # of its own: the verdict judges the chaos_work jobs of the load.
        "INSERT INTO jobs (job_type, queue, priority, state, payload, max_retries, attempts,"
        " run_count, run_at, published_at, created_at, started_at, finished_at)"
        " SELECT 'history', 'default', 1 + i %% 3, 'completed', '{}'::jsonb, 3, 1, 1,"
        " now() - interval '2 days', now() - interval '2 days', now() - interval '2 days',"
        " now() - interval '2 days', now() - interval '2 days' FROM generate_series(1, %s) AS i",
        (rows,),
    )
    run.query("ANALYZE jobs")
    run.figures.extra["prefilled_finished"] = rows
    run.hit(rows, "finished_rows_under_the_duties")  # this scenario's fault is the table's size
    # The leader runs here, in-process, so that every pass is timed; a standby daemon beside it.
    env = run._direct_env()
    settings = load_settings(
        database_url=env["JQ_DATABASE_URL"],
        rabbitmq_url=env["JQ_RABBITMQ_URL"],
        redis_url=env["JQ_REDIS_URL"],
        namespace=run.ns,
        scheduler_interval=0.2,
        republish_after=3,
        lease_ttl=10,
    )
    leader = Scheduler(settings, name="soak-leader")
    passes: list[float] = []
    stop = threading.Event()

    def lead() -> None:
        while not stop.is_set():
            try:
                report: dict[str, Any] = leader.run_once()
                if report.get("leader") and "pass_seconds" in report:
                    passes.append(report["pass_seconds"])
            except Exception as exc:  # an outage is not part of this scenario: note it
                run.figures.problems.append(f"leader pass failed: {exc}"[:200])
            stop.wait(0.2)

    thread = threading.Thread(target=lead, daemon=True)
    thread.start()
    run.start_scheduler()
    run.start_worker(8)
    run.start_worker(8)
    load = run.workload(sleep=(0.01, 0.05))
    load.start()
    dashboard: list[float] = []
    store = Store(settings.database_url, run.ns, application_name="chaos-dashboard")
    deadline = time.monotonic() + (20 if run.quick else 90)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        store.job_counts()  # what jq stats, jq top and /metrics read
        now = int(time.time())
        job_count_created_per_second(store, now - 120, now)  # jq top's submitted rate
        dashboard.append(time.perf_counter() - t0)
        time.sleep(0.5)
    store.close()
    load.stop()
    run.fault_over()
    figures = run.measure(load)
    stop.set()
    thread.join(10)
    leader.request_stop()
    leader.store.shutdown()
    leader.publisher.close()
    figures.extra["leader_pass"] = _percentiles(passes)
    figures.extra["leader_passes"] = len(passes)
    figures.extra["dashboard_query"] = _percentiles(dashboard)
    figures.extra["stuck"] = _stuck(run)
    return figures
