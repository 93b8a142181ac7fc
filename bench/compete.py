"""W1–W3 for one contestant, the same for jq and every peer: its own client submits through the
driver (bench/peers/peerside.py) in its own venv, its own CLI runs the workers, and Redis
counts completions (every job INCRs the run's key; latency jobs also record when they started).

Order in a contestant's namespace: W2 (preload, then workers drain), W3 (into the same workers,
idle by then), stop the workers, W1 (submits with no worker running).
"""

from __future__ import annotations

import json
import subprocess
import time
import traceback
from dataclasses import dataclass
from typing import Any

import redis

from bench import harness, limits, venvs
from bench.contestants import Contestant, Space
from bench.workloads import percentile


@dataclass(frozen=True)
class Plan:
    w1_jobs: int = 2_000  # one by one
    w1_bulk_jobs: int = 20_000
    chunk: int = 5_000
    w2_jobs: int = 20_000
    w2_cap_s: float = 60.0  # a slower contestant's drain is measured over what it did by then
    w3_jobs: int = 500
    w3_rate: float = 50.0
    yardstick_rows: int = 300  # the insert-commit yardstick beside each contestant's W1


QUICK_PLAN = Plan(
    yardstick_rows=100,
    w1_jobs=500,
    w1_bulk_jobs=2_000,
    w2_jobs=2_000,
    w2_cap_s=20.0,
    w3_jobs=50,
    w3_rate=50.0,
)


class Runner:
    def __init__(self, contestant: Contestant, space: Space):
        self.c = contestant
        self.space = space
        self.bin = venvs.ensure(contestant.peer)
        self.python = str(venvs.python(contestant.peer))
        self.redis = redis.Redis.from_url(space.base.redis_url)
        self.workers: list[subprocess.Popen] = []

    def drive(self, cmd: str, n: int, key: str, extra: float = 0) -> dict[str, Any]:
        """Submit through the contestant's own client in its venv; the driver times itself."""
        done = subprocess.run(
            [self.python, "-m", "peerside", cmd, str(n), key, str(extra)],
            env=self.space.env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=venvs.PEERS_DIR / self.c.peer,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.c.key} driver {cmd} failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def setup(self) -> None:
        for command in self.c.setup:
            done = subprocess.run(
                [str(self.bin / command[0]), *command[1:]],
                env=self.space.env,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=venvs.PEERS_DIR / self.c.peer,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()[-800:]}")

    def start_workers(self) -> None:
        for n, command in enumerate(self.space.worker_commands(self.bin)):
            self.workers.append(
                harness.spawn(
                    command,
                    self.space.env,
                    f"{self.space.name}-worker{n}",
                    cwd=venvs.PEERS_DIR / self.c.peer,
                )
            )

    def stop_workers(self) -> None:
        harness.stop(self.workers)
        self.workers.clear()

    def count(self, key: str) -> int:
        return int(self.redis.get(key) or 0)

    def _check_alive(self) -> None:
        for proc in self.workers:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.c.key} worker pid {proc.pid} exited {proc.returncode}; "
                    f"see {harness.LOG_DIR}"
                )

    def wait_count(self, key: str, n: int, timeout: float, poll: float = 0.005) -> dict[str, Any]:
        """Wait for `n` completions. The clock starts when the first is seen (so worker start-up
        is not counted), and the rate counts only the completions after that moment, up to the
        99th hundredth of the jobs: a contestant whose last few jobs wait for a timer of its own
        (pgqueuer's last batch has been seen to wait most of a minute) is measured by its pace,
        not by its tail, which `tail_s` reports beside it."""
        deadline = time.monotonic() + timeout
        first_at, first_count = None, 0
        most = max(1, n * 99 // 100)
        most_at, most_count = None, 0
        while True:
            done = self.count(key)
            now = time.perf_counter()
            if done and first_at is None:
                first_at, first_count = now, done
            if done >= most and most_at is None:
                most_at, most_count = now, done
            if done >= n or time.monotonic() > deadline:
                break
            self._check_alive()
            time.sleep(poll)
        span = (now - first_at) if first_at is not None else 0.0
        if most_at is not None and first_at is not None and most_at > first_at:
            counted, paced = most_count - first_count, most_at - first_at
        else:  # never reached 99 % (or all at once): over whatever it did
            counted, paced = done - first_count, span
        return {
            "completed": done,
            "complete": done >= n,
            "span_s": span,
            "tail_s": (now - most_at) if most_at is not None and done >= n else None,
            "per_s": counted / paced if paced > 0 and counted > 0 else None,
        }

    # -- the workloads ----------------------------------------------------------------------

    def w2(self, plan: Plan) -> dict[str, Any]:
        key = self.space.counter("w2")
        bulk = self.drive("bulk", plan.w2_jobs, key, plan.chunk)
        preload = "bulk" if not bulk.get("unsupported") else "one by one"
        if bulk.get("unsupported"):
            bulk = self.drive("one", plan.w2_jobs, key)
        self.start_workers()
        # the start-up (imports, connections) is outside the clock; allow it a minute
        drained = self.wait_count(key, 1, timeout=60)
        if not drained["completed"]:
            raise RuntimeError(f"{self.c.key}: no job completed a minute after the workers started")
        drained = self.wait_count(key, plan.w2_jobs, timeout=plan.w2_cap_s)
        return {"jobs": plan.w2_jobs, "preload": preload, "preload_s": bulk["seconds"], **drained}

    def w3(self, plan: Plan) -> dict[str, Any]:
        warm = self.space.counter("w3warm")
        self.drive("rate", 20, warm, plan.w3_rate)  # every worker process past its first job
        self.wait_count(warm, 20, timeout=60)
        time.sleep(0.5)  # idle
        key = self.space.counter("w3")
        sent = self.drive("rate", plan.w3_jobs, key, plan.w3_rate)
        done = self.wait_count(key, plan.w3_jobs, timeout=60)
        latencies = [float(x) for x in self.redis.lrange(key + ":lat", 0, -1)]
        if not latencies:
            raise RuntimeError(f"W3: none of {plan.w3_jobs} jobs started within a minute")
        return {
            "jobs": plan.w3_jobs,
            "started": len(latencies),  # the ones that had not started are not in p99
            "complete": done["complete"],
            "rate_per_s": plan.w3_rate,
            "achieved_rate_per_s": plan.w3_jobs / sent["seconds"] if sent["seconds"] else None,
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
        }

    def _yardstick(self, plan: Plan, when: str) -> float:
        return limits.insert_commit_per_s(
            self.space.base.database_url, f"{self.space.name}_yard_{when}", plan.yardstick_rows
        )

    def w1(self, plan: Plan) -> dict[str, Any]:
        before = self._yardstick(plan, "before")
        one = self.drive("one", plan.w1_jobs, self.space.counter("w1"))
        after = self._yardstick(plan, "after")
        bulk = self.drive("bulk", plan.w1_bulk_jobs, self.space.counter("w1b"), plan.chunk)
        return {
            # a bare single-row insert commit just before and just after the one-by-one submits
            "insert_commit_per_s": (before + after) / 2,
            "insert_commit_before_after_per_s": [before, after],
            "jobs": plan.w1_jobs,
            "bulk_jobs": plan.w1_bulk_jobs,
            "chunk": plan.chunk,
            "one_by_one_per_s": plan.w1_jobs / one["seconds"],
            "bulk_per_s": None if bulk.get("unsupported") else plan.w1_bulk_jobs / bulk["seconds"],
        }


def _step(figures: dict[str, Any], name: str, fn, plan: Plan, say) -> None:
    say(f"[dim]  {figures['key']} {name}[/]")
    try:
        figures[name] = fn(plan)
    except Exception as exc:  # reported in its cell; the other workloads still run
        traceback.print_exc()
        figures[name] = {"error": f"{type(exc).__name__}: {exc}"}


def run(contestant: Contestant, run_id: str, plan: Plan, say=print) -> dict[str, Any]:
    """W2 in one namespace; W3 and then W1 in a second, so that a drain cut short by its cap
    leaves no backlog in front of the latency jobs."""
    figures: dict[str, Any] = {
        "key": contestant.key,
        "label": contestant.label,
        "settings": contestant.settings,
        "durable": contestant.durable,
    }
    begun = time.perf_counter()
    for part, steps in (("_a", ("W2",)), ("_b", ("W3", "W1"))):
        try:
            with Space(contestant, run_id, part) as space:
                runner = Runner(contestant, space)
                try:
                    runner.setup()
                    if "W3" in steps:
                        runner.start_workers()
                    for name in steps:
                        if name == "W1":
                            runner.stop_workers()  # submits with no worker running
                        _step(figures, name, getattr(runner, name.lower()), plan, say)
                finally:
                    runner.stop_workers()
                    runner.redis.close()
        except Exception as exc:  # the namespace or the setup failed: every step of this part
            traceback.print_exc()
            for name in steps:
                figures.setdefault(name, {"error": f"{type(exc).__name__}: {exc}"})
    figures["elapsed_s"] = time.perf_counter() - begun
    return figures
