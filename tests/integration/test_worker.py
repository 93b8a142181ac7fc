"""The worker against the real services: each built-in job type end to end, retries and their
back-off, dead letters, priorities, cancellation, crashes (kill -9), graceful shutdown (SIGTERM),
duplicate and poison messages, and a Redis that is not there."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from jq_cli.broker import Message, Publisher
from jq_cli.store import NewJob

import handlers_for_tests  # noqa: F401  (registers the t_* job types for in-process workers)
from conftest import make_settings, wait_for
from handlers_for_tests import read_log

TESTS_DIR = str(Path(__file__).resolve().parent)
WORKER_ENV = {"PYTHONPATH": TESTS_DIR}


def wait_state(ops, job_id: int, *states: str, timeout: float = 15.0) -> dict:
    def reached():
        job = ops.get(job_id)
        return job if job["state"] in states else None

    return wait_for(reached, timeout, what=f"job {job_id} to be {'/'.join(states)}")


def outcomes(job: dict) -> list[str]:
    return [a["outcome"] for a in job["attempt_history"]]


def spawn_worker(spawn, *args: str, env: dict | None = None):
    return spawn(
        "worker", "--import", "handlers_for_tests", *args, extra_env={**WORKER_ENV, **(env or {})}
    )


def stderr_of(proc) -> str:
    try:
        return proc.communicate(timeout=5)[1][-3000:]
    except Exception:  # only for failure messages
        return "<no stderr>"


@pytest.fixture
def log_path(tmp_path) -> str:
    return str(tmp_path / "executions.log")


@pytest.fixture
def publisher(settings):
    p = Publisher(settings.rabbitmq_url, settings.namespace)
    yield p
    p.close()


# -- built-in job types -------------------------------------------------------------------------


def test_noop_job_goes_from_queued_to_completed(ops, start_worker):
    job_id = ops.submit("noop", {"n": 1})
    assert ops.get(job_id)["state"] == "queued"
    start_worker()
    job = wait_state(ops, job_id, "completed")
    assert job["attempts"] == 1
    assert outcomes(job) == ["completed"]
    assert job["started_at"] is not None and job["finished_at"] >= job["started_at"]
    assert job["lease_expires_at"] is None  # the lease is released
    assert job["worker"] == job["attempt_history"][-1]["worker"]  # shown: the worker that ran it


def test_send_email_that_succeeds_completes_with_its_result(ops, start_worker):
    job_id = ops.submit(
        "send_email", {"to": "a@example.com", "subject": "hi", "body": "x", "failure_rate": 0}
    )
    start_worker()
    job = wait_state(ops, job_id, "completed")
    assert job["result"]["delivered_to"] == "a@example.com"
    assert job["result"]["message_id"] == f"<{job_id}.1@jq.local>"
    assert outcomes(job) == ["completed"]


def test_send_email_that_always_fails_is_retried_then_dead(ops, start_worker, start_scheduler):
    job_id = ops.submit(
        "send_email",
        {"to": "a@example.com", "subject": "hi", "body": "x", "failure_rate": 1},
        max_retries=2,
        retry_base_delay=0.05,
    )
    start_scheduler()
    start_worker()
    job = wait_state(ops, job_id, "dead")
    assert job["attempts"] == 3
    assert outcomes(job) == ["failed", "failed", "failed"]
    for attempt in job["attempt_history"]:
        assert "simulated SMTP failure" in attempt["error"]
        assert "DeliveryFailed" in attempt["traceback"]
    assert "simulated SMTP failure" in job["last_error"]
    assert job["finished_at"] is not None


def test_process_video_reports_progress_while_running_and_100_at_the_end(ops, start_worker):
    job_id = ops.submit(
        "process_video",
        {"video_url": "https://example.com/v/clip.mov", "output_format": "webm", "duration": 4.0},
    )
    start_worker()

    def midway():
        job = ops.get(job_id)
        return (
            job
            if job["state"] == "running" and job["progress"] and 0 < job["progress"] < 100
            else None
        )

    # Four seconds of running with progress written every half second: a window that a loaded
    # machine's polling does not miss.
    running = wait_for(midway, 15, what="progress between 0 and 100 while running")
    assert running["progress_message"] == "transcoding to webm"
    job = wait_state(ops, job_id, "completed")
    assert job["progress"] == 100
    assert job["result"] == {"output": "clip.webm", "format": "webm", "duration": 4.0}


@pytest.fixture
def web_server():
    """A tiny site on 127.0.0.1: /page has two <p class=x>, anything else is 404. Counts hits."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path == "/page":
                body = (
                    b"<html><body><h1>Title</h1><p class='x'>first</p>"
                    b"<div><p class='x'>second <b>bold</b></p></div><p>other</p></body></html>"
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.hits = hits
    yield server
    server.shutdown()
    server.server_close()


def test_scrape_website_returns_the_matched_text_of_a_local_page(
    ops, settings, start_worker, web_server
):
    allowed = make_settings(settings.namespace, scrape_allow_private=True)
    url = f"http://127.0.0.1:{web_server.server_port}/page"
    job_id = ops.submit("scrape_website", {"url": url, "selector": "p.x"})
    missing = ops.submit(
        "scrape_website", {"url": url.replace("/page", "/gone"), "selector": "p"}, max_retries=3
    )
    start_worker(settings=allowed)
    job = wait_state(ops, job_id, "completed")
    assert job["result"] == {
        "url": url,
        "status": 200,
        "count": 2,
        "matches": ["first", "second bold"],
    }
    # A 404 cannot be fixed by retrying: dead after one attempt.
    gone = wait_state(ops, missing, "dead")
    assert gone["attempts"] == 1 and "HTTP 404" in gone["last_error"]


def test_scrape_website_refuses_a_loopback_url_without_retrying(
    ops, start_worker, start_scheduler, web_server
):
    url = f"http://127.0.0.1:{web_server.server_port}/page"
    job_id = ops.submit(
        "scrape_website", {"url": url, "selector": "p"}, max_retries=3, retry_base_delay=0.05
    )
    start_scheduler()
    start_worker()  # default settings: scrape_allow_private is off
    job = wait_state(ops, job_id, "dead")
    assert job["attempts"] == 1
    assert outcomes(job) == ["failed"]
    assert "refusing to fetch 127.0.0.1" in job["last_error"]
    assert "non-public address" in job["last_error"]
    assert web_server.hits == []  # refused before any request was made


# -- failures, retries and dead letters --------------------------------------------------------


def test_retry_gaps_follow_the_exponential_backoff_within_its_jitter(
    ops, start_worker, start_scheduler
):
    # The tolerance is the scheduling latency allowed between a retry's run_at and its start (a
    # scheduler pass, a publish, a delivery, a claim): generous, for a loaded machine, yet smaller than
    # the next doubling of the back-off, which the last gap (2 s) must not show.
    base, jitter, tolerance = 0.5, 0.1, 1.0
    job_id = ops.submit(
        "t_fail", {}, max_retries=3, retry_base_delay=base, retry_jitter=jitter, retry_max_delay=60
    )
    start_scheduler()
    start_worker()
    job = wait_state(ops, job_id, "dead", timeout=30)
    history = job["attempt_history"]
    assert len(history) == 4
    for n in (1, 2, 3):
        backoff = base * 2 ** (n - 1)
        # The retry may not start before its back-off has passed since the failure was recorded...
        wait_after_failure = (
            history[n]["started_at"] - history[n - 1]["finished_at"]
        ).total_seconds()
        assert wait_after_failure >= backoff, (
            f"attempt {n + 1} started {wait_after_failure:.3f}s after failure {n}"
        )
        # ...and starts within its jitter (plus scheduling latency) of that.
        assert wait_after_failure <= backoff * (1 + jitter) + tolerance, (
            f"attempt {n + 1} started {wait_after_failure:.3f}s after failure {n}, back-off {backoff}s"
        )


@pytest.mark.parametrize("max_retries", [0, 2])
def test_failing_job_is_dead_after_exactly_max_retries_plus_one_attempts(
    ops, start_worker, start_scheduler, log_path, max_retries
):
    job_id = ops.submit(
        "t_fail",
        {"log": log_path, "message": "boom"},
        max_retries=max_retries,
        retry_base_delay=0.05,
    )
    start_scheduler()
    start_worker()
    job = wait_state(ops, job_id, "dead")
    assert job["attempts"] == max_retries + 1
    assert outcomes(job) == ["failed"] * (max_retries + 1)
    assert job["last_error"] == "RuntimeError: boom"
    assert "raise RuntimeError" in job["attempt_history"][-1]["traceback"]
    # Dead is final: a sentinel job behind it completes, and the dead one did not run again.
    sentinel = ops.submit("noop", {})
    wait_state(ops, sentinel, "completed")
    assert len(read_log(log_path)) == max_retries + 1
    assert ops.get(job_id)["state"] == "dead"


def test_job_of_a_type_this_worker_lacks_waits_instead_of_dying(
    ops, store, start_worker, start_scheduler
):
    # Registered as if a worker elsewhere had it (and had gone), so that submit accepts it.
    store.job_type_register(["t_elsewhere"], "another-host:1:abc")
    store._run("UPDATE worker_types SET seen_at = now() - interval '1 hour'")
    job_id = ops.submit("t_elsewhere", {"x": 1}, max_retries=3, retry_base_delay=0.05)
    start_scheduler()
    w = start_worker(name="lacking")

    def waiting():
        job = ops.get(job_id)
        return job if job["state"] == "scheduled" and job["attempt_history"] else None

    job = wait_for(waiting, 15, what="the job to wait for a worker with its type")
    assert job["attempts"] == 0
    assert outcomes(job)[0] == "interrupted"
    assert "no live worker has a handler for job type 't_elsewhere'" in job["last_error"]
    assert w.thread.is_alive()


def test_job_with_an_invalid_payload_goes_dead_without_retries(
    ops, store, publisher, start_worker, start_scheduler
):
    # Submit validates payloads, so write the bad one as an older client or a hand edit might.
    inserted = store.job_insert(
        NewJob(
            "send_email",
            '{"to": "not-an-address", "subject": "s", "body": "b"}',
            "default",
            2,
            3,
            retry_base_delay=0.05,
        )
    )
    publisher.publish([Message(inserted.id, "default", 2)])
    start_scheduler()
    start_worker()
    job = wait_state(ops, inserted.id, "dead")
    assert job["attempts"] == 1
    assert job["last_error"].startswith("invalid payload")
    assert "to" in job["last_error"] and "email address" in job["last_error"]


# -- priorities ---------------------------------------------------------------------------------


def test_high_priority_job_starts_before_queued_low_ones(ops, publisher, start_worker):
    w = start_worker(concurrency=1, prefetch=1)
    # The one slot stays busy until every message is in the broker (cancelled then), however long
    # the submits take on a loaded machine: a fixed busy time would let low jobs start early.
    busy = ops.submit("t_sleep", {"seconds": 60}, priority="low")
    wait_state(ops, busy, "running")
    lows = [ops.submit("noop", {"i": i}, priority="low") for i in range(8)]
    high = ops.submit("noop", {"i": "high"}, priority="high")
    # All nine published and counted by the broker, less the prefetch the worker may hold already.
    waiting = 9 - w.worker.prefetch
    wait_for(
        lambda: publisher.queue_depths(["default"])["default"] == waiting,
        10,
        what=f"{waiting} messages ready in the broker",
    )
    assert ops.cancel([busy]).changed == {busy: "cancelling"}
    for job_id in [*lows, high]:
        wait_state(ops, job_id, "completed")
    started = {j: ops.get(j)["attempt_history"][0]["started_at"] for j in [*lows, high]}
    before_high = [j for j in lows if started[j] < started[high]]
    # With prefetch 1 the worker may already hold one low delivery while busy; every low job still
    # in the broker must come after the high one.
    assert len(before_high) <= w.worker.prefetch, (
        f"{len(before_high)} low jobs started before the high one"
    )
    # Low jobs among themselves keep their submission order.
    assert sorted(lows, key=started.get) == lows


# -- cancellation -------------------------------------------------------------------------------


def test_job_cancelled_before_it_runs_never_runs(ops, start_worker, log_path):
    job_id = ops.submit("t_record", {"log": log_path})
    report = ops.cancel([job_id])
    assert report.changed == {job_id: "cancelled"}
    w = start_worker()
    sentinel = ops.submit("t_record", {"log": log_path})
    wait_state(ops, sentinel, "completed")
    wait_for(lambda: w.worker.duplicates >= 1, 15, what="the cancelled job's message to be dropped")
    job = ops.get(job_id)
    assert job["state"] == "cancelled"
    assert job["attempts"] == 0 and job["attempt_history"] == []
    assert [e["job"] for e in read_log(log_path)] == [sentinel]


def test_cancelling_a_running_process_video_stops_it_as_cancelled(
    ops, start_worker, start_scheduler
):
    job_id = ops.submit(
        "process_video", {"video_url": "https://example.com/a.mp4", "duration": 20}, max_retries=3
    )
    start_scheduler()
    start_worker()
    wait_for(lambda: (ops.get(job_id)["progress"] or 0) > 0, 10, what="progress reported")
    asked = time.monotonic()
    assert ops.cancel([job_id]).changed == {job_id: "cancelling"}
    job = wait_state(ops, job_id, "cancelled")  # a video not stopped would end completed after 20 s
    # Heard at once by the worker's cancel listener (with room for a loaded machine), not at the
    # end of the video.
    assert time.monotonic() - asked < 5
    assert outcomes(job) == ["cancelled"]
    assert job["progress"] < 100
    assert job["last_error"].startswith("cancelled")
    assert job["result"] is None


def test_cancelled_handler_that_raises_still_ends_cancelled_not_retried(
    ops, start_worker, start_scheduler, log_path
):
    job_id = ops.submit(
        "t_sleep",
        {"seconds": 20, "on_cancel": "raise", "log": log_path},
        max_retries=3,
        retry_base_delay=0.05,
    )
    start_scheduler()
    start_worker()
    wait_state(ops, job_id, "running")
    ops.cancel([job_id])
    job = wait_state(ops, job_id, "cancelled")
    assert job["attempts"] == 1
    assert job["last_error"] == "RuntimeError: stopped half way"
    # No retry follows: a sentinel runs, the cancelled job is not started again.
    sentinel = ops.submit("noop", {})
    wait_state(ops, sentinel, "completed")
    assert [e["event"] for e in read_log(log_path)] == ["start", "cancelled"]
    assert ops.get(job_id)["state"] == "cancelled"


# -- crashes and shutdown -----------------------------------------------------------------------


def test_job_of_a_worker_killed_mid_run_completes_on_another_worker(
    ops, spawn, start_worker, start_scheduler, tmp_path, log_path
):
    marker = str(tmp_path / "first-run")
    victim = spawn_worker(spawn, "--name", "victim", env={"JQ_LEASE_TTL": "1.0"})
    job_id = ops.submit(
        "t_sleep", {"slow_once": marker, "first_seconds": 60, "seconds": 0.05, "log": log_path}
    )
    # The marker, not the claim: the job is claimed a moment before its handler starts, and a kill
    # in between would leave the long first run to the rescuer.
    wait_for(
        lambda: os.path.exists(marker) or victim.poll() is not None,
        20,
        what="the victim worker to start the job's long first run",
    )
    assert victim.poll() is None, stderr_of(victim)
    assert ops.get(job_id)["worker"] == "victim"
    victim.kill()  # SIGKILL: no hand back, no outcome, only an expiring lease
    victim.wait(10)
    start_scheduler()
    start_worker(name="rescuer")
    job = wait_state(ops, job_id, "completed", timeout=20)
    assert outcomes(job) == ["lost", "completed"]
    assert [a["worker"] for a in job["attempt_history"]] == ["victim", "rescuer"]
    assert "lease expired" in job["attempt_history"][0]["error"]
    assert [e["event"] for e in read_log(log_path)] == ["start", "start", "done"]


def test_job_that_kills_its_worker_every_time_ends_dead(ops, spawn, start_scheduler, log_path):
    job_id = ops.submit("t_kill", {"log": log_path, "spare_pid": os.getpid()}, max_retries=1)
    start_scheduler()
    for n in (1, 2):
        proc = spawn_worker(spawn, "--name", f"doomed{n}", env={"JQ_LEASE_TTL": "1.0"})
        assert proc.wait(20) == -signal.SIGKILL, stderr_of(proc)
        wait_state(ops, job_id, "queued", "dead", timeout=20)
    job = wait_state(ops, job_id, "dead")
    assert outcomes(job) == ["lost", "lost"]
    assert job["attempts"] == 2
    assert "lost its lease" in job["last_error"]
    assert len(read_log(log_path)) == 2


def test_worker_that_gets_its_own_rescued_job_back_keeps_the_new_run_leased(
    ops, settings, store, start_worker, start_scheduler, tmp_path, log_path
):
    """A worker cut off longer than its lease loses the job to a rescue; when the re-published
    message comes back to that same worker, the stale run must be stopped, and its late outcome
    must not drop the new run's lease (which would get the new run rescued and run a third time)."""
    from jq_cli.scheduler.daemon import Scheduler

    w = start_worker(
        concurrency=2, name="same", settings=make_settings(settings.namespace, lease_ttl=1.5)
    )
    # The first run is long, so that it is still running when the job comes back, however slow the
    # machine; only the worker stopping it ends it early (a short one could just finish by itself).
    first = tmp_path / "first"
    job_id = ops.submit(
        "t_sleep", {"slow_once": str(first), "first_seconds": 60, "seconds": 3, "log": log_path}
    )
    wait_state(ops, job_id, "running")
    wait_for(
        first.exists, 15, what="the long first run to start"
    )  # claimed a moment before it runs
    # As if the worker had been cut off: its lease ran out and a scheduler took the job back.
    rescuer = Scheduler(settings, name="rescuer")
    try:

        def rescued() -> bool:
            # The live worker renews its lease every half second, expired or not: expire it again
            # until a rescue comes in before the next renewal.
            store._run(
                "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
                " WHERE id = %s AND state = 'running' AND run_count = 1",
                (job_id,),
            )
            return rescuer.rescuer.run_once() == {"queued": 1}

        wait_for(rescued, 15, what="a rescue of the expired lease")
    finally:
        rescuer.store.close()
        rescuer.publisher.close()
    start_scheduler()
    job = wait_state(ops, job_id, "completed", timeout=15)
    assert outcomes(job) == ["lost", "completed"]
    assert [a["worker"] for a in job["attempt_history"]] == ["same", "same"]
    events = [e["event"] for e in read_log(log_path)]
    assert events.count("start") == 2, events
    assert "cancelled" in events  # the stale first run was told to stop
    wait_for(lambda: not w.worker.running, 15, what="the worker to hold no job")


def test_sigterm_lets_a_running_short_job_finish_then_exits_0(ops, spawn, log_path):
    proc = spawn_worker(spawn, "--name", "drainer")
    # Two seconds: a window that a loaded machine's polling does not miss (SIGTERM must come while
    # the job runs), yet well inside the 5 s grace.
    job_id = ops.submit("t_sleep", {"seconds": 2.0, "log": log_path})
    wait_for(
        lambda: ops.get(job_id)["state"] == "running" or proc.poll() is not None,
        20,
        what="job running",
    )
    proc.send_signal(signal.SIGTERM)
    late = ops.submit("noop", {})  # arrives while draining: not taken
    assert proc.wait(15) == 0, stderr_of(proc)
    job = ops.get(job_id)
    assert job["state"] == "completed"
    assert outcomes(job) == ["completed"]
    assert [e["event"] for e in read_log(log_path)] == ["start", "done"]
    assert ops.get(late)["state"] == "queued"


def test_sigterm_hands_back_a_job_longer_than_the_grace_and_exits_0(
    ops, store, spawn, start_worker, tmp_path, log_path
):
    proc = spawn_worker(spawn, "--name", "leaver", env={"JQ_SHUTDOWN_GRACE": "0.5"})
    first = tmp_path / "first"
    job_id = ops.submit(
        "t_sleep",
        {"slow_once": str(first), "first_seconds": 60, "seconds": 0.05, "log": log_path},
        max_retries=0,
    )
    # The long first run has started (its marker exists), not only been claimed.
    wait_for(
        lambda: first.exists() or proc.poll() is not None, 20, what="the long first run to start"
    )
    assert ops.get(job_id)["state"] == "running", stderr_of(proc)
    signalled = store.now()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, stderr_of(proc)  # long before the 60 s job would have ended
    job = ops.get(job_id)
    assert job["state"] == "queued"
    assert job["attempts"] == 0  # the interrupted attempt gives its retry back
    assert outcomes(job) == ["interrupted"]
    # The hand-back came after the 0.5 s grace, timed by Postgres (the process's exit after it is
    # slower on a loaded machine): not at once, nor after the 5 s grace of the test settings.
    waited = (job["attempt_history"][0]["finished_at"] - signalled).total_seconds()
    assert 0.5 <= waited < 4, f"handed back {waited:.3f}s after SIGTERM"
    # It was published again: a new worker runs it, and max_retries=0 was not used up.
    start_worker()
    job = wait_state(ops, job_id, "completed")
    assert outcomes(job) == ["interrupted", "completed"]
    assert job["attempts"] == 1


# -- messages -----------------------------------------------------------------------------------


def test_duplicate_messages_do_not_run_a_job_twice(ops, publisher, start_worker, log_path):
    ids = [ops.submit("t_record", {"log": log_path}) for _ in range(5)]  # one message each
    publisher.publish([Message(i, "default", 2) for i in ids for _ in range(2)])  # two more each
    workers = [start_worker(concurrency=2, prefetch=2), start_worker(concurrency=2, prefetch=2)]
    for job_id in ids:
        wait_state(ops, job_id, "completed")
    wait_for(
        lambda: sum(w.worker.duplicates for w in workers) == 10, 10, what="10 duplicates counted"
    )
    executions = [e["job"] for e in read_log(log_path)]
    assert sorted(executions) == sorted(ids)
    for job_id in ids:
        assert ops.get(job_id)["attempts"] == 1


def test_poison_messages_do_not_stop_the_worker(ops, publisher, start_worker):
    w = start_worker()
    rejected = [
        b"not-a-number",
        b"",
        b"9" * (1 << 20),
        b"\xff\xfe\xfd",
        b"-5",
        b"0",
        b"1" * 25,
        b"12 ",
    ]
    for body in rejected:
        publisher.publish_raw("default", body)
    publisher.publish_raw("default", b"424242")  # a number, but no such job
    good = [ops.submit("noop", {"i": i}) for i in range(3)]
    for job_id in good:
        wait_state(ops, job_id, "completed")
    wait_for(lambda: w.worker.poison == len(rejected) + 1, 10, what="every poison message counted")
    assert w.thread.is_alive()
    # Unusable bodies are dead-lettered for inspection; the unknown id is dropped.
    wait_for(
        lambda: publisher.queue_depths(["_poison"])["_poison"] == len(rejected),
        10,
        what="rejected messages in the poison queue",
    )
    after = ops.submit("noop", {})
    wait_state(ops, after, "completed")


def test_worker_with_a_custom_name_sends_heartbeats(ops, start_worker):
    start_worker(name="plain-name", concurrency=3)

    def listed():
        return [w for w in (ops.stats()["workers"] or []) if w["name"] == "plain-name"]

    (info,) = wait_for(listed, 15, what="a heartbeat of the worker named plain-name")
    assert info["pid"] == os.getpid() and info["concurrency"] == 3
    assert info["processed"] == 0
    # It keeps beating (not one beat and a dead thread): a later beat reports the job it ran.
    wait_state(ops, ops.submit("noop", {}), "completed")
    wait_for(lambda: listed() and listed()[0]["processed"] == 1, 15, what="a later heartbeat")


def test_jobs_complete_when_redis_is_unreachable(ops, settings, start_worker):
    no_redis = make_settings(settings.namespace, redis_url="redis://127.0.0.1:1/0")
    w = start_worker(settings=no_redis)
    ids = [ops.submit("noop", {"i": i}) for i in range(5)]
    for job_id in ids:
        wait_state(ops, job_id, "completed")
    # The worker counts an outcome just after committing it: the count may trail the state by a moment.
    wait_for(
        lambda: w.worker.processed == 5,
        10,
        what=lambda: f"5 jobs counted, not {w.worker.processed}",
    )
    wait_for(lambda: w.worker._telemetry_down, 15, what="the worker to notice Redis is down")
    assert w.thread.is_alive()
