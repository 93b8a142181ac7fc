"""Cron schedules against the real services: one job per tick however many schedulers race, a
standby that takes over from a killed leader, misfire policies after downtime, retention, and the
`jq schedule` commands (bad input writes nothing; apply is idempotent)."""

from __future__ import annotations

import itertools
import json
import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.errors import Conflict, InvalidInput, NotFound
from jq_cli.scheduler.daemon import Scheduler

from conftest import wait_for

EVERY_SECOND = "* * * * * *"


def ticks(store, name: str) -> list[tuple[datetime, int]]:
    """(fire_time, jobs with it) for the schedule's ticks, in order."""
    rows = store._all(
        "SELECT fire_time, count(*) AS n FROM jobs WHERE schedule_name = %s AND fire_time IS NOT NULL"
        " GROUP BY fire_time ORDER BY fire_time",
        (name,),
    )
    return [(r["fire_time"], r["n"]) for r in rows]


def count(store, table: str) -> int:
    return store._one(f"SELECT count(*) AS n FROM {table}")["n"]


def set_next_fire(store, name: str, when: datetime | str) -> None:
    store._run("UPDATE schedules SET next_fire_at = %s WHERE name = %s", (when, name))


MISFIRE = re.compile(
    r"event=schedule_misfire schedule=(\S+) policy=once missed=(\d+)\+? fired=(\S+)"
)


def misfires(log_lines, name: str) -> dict[datetime, int]:
    """{fire time: ticks missed before it} from the schedulers' `schedule_misfire` log lines."""
    found = {}
    for line in log_lines:
        m = MISFIRE.search(line)
        if m and m[1] == name:
            found[datetime.fromisoformat(m[3])] = int(m[2])
    return found


def assert_no_tick_lost(fired: list[tuple[datetime, int]], missed: dict[datetime, int]) -> None:
    """Each tick comes a second after the one before, unless no scheduler ran for longer than a tick
    (a stall of a loaded machine, a takeover): then, by the misfire policy `once`, one job stands in
    for the ticks missed, and the scheduler said so in its log. A gap it did not log is a lost tick."""
    for (a, _), (b, _) in itertools.pairwise(fired):
        assert b - a == timedelta(seconds=1 + missed.get(b, 0)), (
            f"{a} -> {b}; misfires logged: {missed}"
        )


# -- exactly once -------------------------------------------------------------------------------


def test_two_schedulers_racing_create_exactly_one_job_per_tick(ops, store, make_scheduler, caplog):
    ops.schedule_add("tick", "noop", EVERY_SECOND)
    # Both fire without the leader lock, to prove the unique key alone holds the line.
    racers = [make_scheduler("a"), make_scheduler("b")]
    stop = threading.Event()

    def race(s: Scheduler) -> None:
        while not stop.is_set():
            s.cron.run_once()
            time.sleep(0.01)

    threads = [threading.Thread(target=race, args=(s,)) for s in racers]
    for t in threads:
        t.start()
    wait_for(lambda: len(ticks(store, "tick")) >= 5, 15, what="five ticks")
    stop.set()
    for t in threads:
        t.join(10)
    fired = ticks(store, "tick")
    assert all(n == 1 for _, n in fired), fired
    assert_no_tick_lost(fired, misfires((r.getMessage() for r in caplog.records), "tick"))
    assert ops.schedule_get("tick")["last_fire_at"] == fired[-1][0]


def test_a_retried_tick_creates_no_second_job(ops, store, make_scheduler):
    ops.schedule_add("tick", "noop", EVERY_SECOND)
    s = make_scheduler("a")
    wait_for(lambda: s.cron.run_once() == 1, 10, what="a tick")
    ((fired, _),) = ticks(store, "tick")
    # The timer is rolled back to the tick already fired, as a scheduler that retried a transaction
    # it believed lost (or restored from an old backup) would see it.
    set_next_fire(store, "tick", fired)
    assert s.cron.run_once() == 0
    assert ticks(store, "tick")[0] == (fired, 1)
    assert ops.schedule_get("tick")["next_fire_at"] > fired


def test_standby_takes_over_within_seconds_of_kill_9_of_the_leader(ops, store, spawn):
    ops.schedule_add("tick", "noop", EVERY_SECOND)
    procs = [spawn("scheduler"), spawn("scheduler")]

    def leader_pid() -> int | None:
        """The pid of the spawned scheduler that holds the leader lease (its name is host:pid)."""
        holder = store.leader_current()
        pids = {int(holder.rsplit(":", 1)[1])} if holder else set()
        pids &= {p.pid for p in procs}
        return pids.pop() if pids else None

    first = wait_for(leader_pid, 20, what="a leader")
    wait_for(lambda: len(ticks(store, "tick")) >= 2, 15, what="the leader to fire ticks")
    leader = next(p for p in procs if p.pid == first)
    standby = next(p for p in procs if p.pid != first)
    leader.send_signal(signal.SIGKILL)
    leader.wait(5)
    killed_at = store.now()
    took_over = time.monotonic()
    assert wait_for(lambda: leader_pid() == standby.pid, 15, what="the standby to take the lead")
    wait_for(
        lambda: ticks(store, "tick")[-1][0] > killed_at + timedelta(seconds=1),
        15,
        what="the standby to fire a tick after the kill",
    )
    # Within seconds (the standby campaigns every 0.1 s; the rest is room for a loaded machine).
    assert time.monotonic() - took_over < 10
    fired = ticks(store, "tick")
    assert all(n == 1 for _, n in fired)
    assert standby.poll() is None
    # Nothing lost beyond the misfire policy: the ticks of the takeover (and of any stall of a loaded
    # machine) are closed by one job (policy once) for the latest of them, which the leader logs.
    takeover = [b - a for (a, _), (b, _) in itertools.pairwise(fired) if a <= killed_at < b]
    assert takeover and takeover[0] < timedelta(seconds=10), takeover
    standby.send_signal(signal.SIGTERM)
    assert standby.wait(20) == 0
    log_lines = leader.stderr.read().splitlines() + standby.stderr.read().splitlines()
    assert_no_tick_lost(fired, misfires(log_lines, "tick"))


# -- misfires -----------------------------------------------------------------------------------


def test_misfire_once_fires_one_job_for_the_ticks_missed_during_downtime(
    ops, store, make_scheduler
):
    ops.schedule_add("yearly", "noop", "0 0 1 1 *")  # misfire defaults to once
    ops.schedule_add("fast", "noop", EVERY_SECOND, misfire="once")
    now = store.now()
    set_next_fire(store, "yearly", "2020-01-01T00:00:00Z")  # five years without a scheduler
    set_next_fire(store, "fast", now - timedelta(seconds=30))  # thirty seconds without one
    make_scheduler("back").cron.run_once()
    yearly = ticks(store, "yearly")
    assert yearly == [(datetime(now.year, 1, 1, tzinfo=UTC), 1)]  # one job, not five
    assert ops.schedule_get("yearly")["next_fire_at"] == datetime(now.year + 1, 1, 1, tzinfo=UTC)
    fast = ticks(store, "fast")
    assert len(fast) == 1 and fast[0][0] > now - timedelta(
        seconds=1
    )  # one job, for the latest tick


def test_misfire_skip_fires_nothing_for_missed_ticks_and_resumes_at_the_next(
    ops, store, make_scheduler
):
    ops.schedule_add("yearly", "noop", "0 0 1 1 *", misfire="skip")
    set_next_fire(store, "yearly", "2020-01-01T00:00:00Z")
    s = make_scheduler("back")
    assert s.cron.run_once() == 0
    assert ticks(store, "yearly") == []
    this_year = store.now().year
    assert ops.schedule_get("yearly")["next_fire_at"] == datetime(this_year + 1, 1, 1, tzinfo=UTC)
    # A fast schedule skips the backlog but fires its ticks again once the scheduler is back.
    ops.schedule_add("fast", "noop", EVERY_SECOND, misfire="skip")
    set_next_fire(store, "fast", store.now() - timedelta(minutes=10))
    s.cron.run_once()
    assert len(ticks(store, "fast")) <= 1  # at most the tick of this very second
    wait_for(lambda: s.cron.run_once() or len(ticks(store, "fast")) >= 2, 5, what="the next tick")


# -- operations -----------------------------------------------------------------------------------


def test_schedule_lifecycle_pause_resume_run_now_edit_remove(ops, store, make_scheduler):
    s = ops.schedule_add(
        "nightly",
        "send_email",
        "0 3 * * *",
        payload={"to": "a@example.com", "subject": "s", "body": "b"},
        priority="high",
        max_retries=1,
        timezone="Europe/Berlin",
    )
    assert s["priority"] == "high" and s["enabled"] and s["next_fire_at"] > store.now()
    with pytest.raises(Conflict, match="schedule nightly already exists"):
        ops.schedule_add("nightly", "noop", "* * * * *")
    paused = ops.schedule_set_enabled("nightly", False)
    assert paused["enabled"] is False
    set_next_fire(store, "nightly", store.now() - timedelta(seconds=1))
    assert make_scheduler("a").cron.run_once() == 0  # paused: due but not fired
    resumed = ops.schedule_set_enabled("nightly", True)
    assert resumed["next_fire_at"] > store.now()  # the pause's ticks are not misfires
    job_id = ops.schedule_run_now("nightly")
    job = ops.get(job_id)
    assert (job["state"], job["priority"], job["max_retries"]) == ("queued", "high", 1)
    assert job["schedule_name"] == "nightly" and job["fire_time"] is None
    shown = ops.schedule_get("nightly", next_n=3)
    assert [j["id"] for j in shown["recent_jobs"]] == [job_id]
    assert len(shown["next_fire_times"]) == 3
    assert all(t.astimezone(ZoneBerlin).hour == 3 for t in shown["next_fire_times"])
    edited = ops.schedule_edit("nightly", cron="30 4 * * *", misfire="skip")
    assert (edited["cron"], edited["misfire"], edited["priority"]) == ("30 4 * * *", "skip", "high")
    assert edited["next_fire_at"].astimezone(ZoneBerlin).strftime("%H:%M") == "04:30"
    with pytest.raises(InvalidInput, match=r"timezone|time zone"):
        ops.schedule_edit("nightly", timezone="Nowhere/Land")
    assert ops.schedule_get("nightly")["timezone"] == "Europe/Berlin"  # nothing written
    ops.schedule_remove("nightly")
    with pytest.raises(NotFound):
        ops.schedule_get("nightly")
    with pytest.raises(NotFound):
        ops.schedule_run_now("nightly")
    assert ops.get(job_id)["schedule_name"] == "nightly"  # its jobs stay


from zoneinfo import ZoneInfo  # noqa: E402

ZoneBerlin = ZoneInfo("Europe/Berlin")


# -- retention ----------------------------------------------------------------------------------


def test_retention_prunes_old_terminal_jobs_only_in_bounded_batches(
    ops, store, make_scheduler, monkeypatch
):
    import jq_cli.scheduler.prune as prune_module

    ids = ops.submit_many([{"job_type": "noop", "payload": {"i": i}} for i in range(12)])
    states = ["completed"] * 5 + ["dead"] * 3 + ["cancelled"] * 2 + ["queued", "completed"]
    for job_id, state in zip(ids, states, strict=False):
        store._run(
            "UPDATE jobs SET state = %s, finished_at = CASE WHEN %s = 'queued' THEN NULL ELSE now() END"
            " WHERE id = %s",
            (state, state, job_id),
        )
    # Old enough: 4 completed (8 days), 1 dead of 31 days, 2 dead of 10 days (kept), 2 cancelled of 8 days.
    age = {
        ids[0]: 8,
        ids[1]: 8,
        ids[2]: 8,
        ids[3]: 8,
        ids[4]: 1,
        ids[5]: 31,
        ids[6]: 10,
        ids[7]: 10,
        ids[8]: 8,
        ids[9]: 8,
        ids[10]: 400,
        ids[11]: 0,
    }
    for job_id, days in age.items():
        store._run(
            "UPDATE jobs SET finished_at = now() - make_interval(days => %s), updated_at = now()"
            " - make_interval(days => %s) WHERE id = %s AND finished_at IS NOT NULL",
            (days, days, job_id),
        )
    store._run("UPDATE jobs SET created_at = now() - interval '400 days' WHERE id = %s", (ids[10],))
    monkeypatch.setattr(prune_module, "PRUNE_BATCH", 2)
    monkeypatch.setattr(prune_module, "PRUNE_BATCHES", 1)
    s = make_scheduler("pruner")
    first = s.pruner.run_once()
    assert first == {"completed": 2, "dead": 1, "cancelled": 2}  # at most one batch of 2 per state
    assert s.pruner.run_once() == {"completed": 2}
    assert s.pruner.run_once() == {}
    left = {r["id"] for r in store._all("SELECT id FROM jobs")}
    assert left == {
        ids[4],
        ids[6],
        ids[7],
        ids[10],
        ids[11],
    }  # young, dead < 30 d, and the queued job


# -- the CLI --------------------------------------------------------------------------------------


def assert_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, f"exit {result.returncode}: {result.stderr}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jq: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


BAD_ADDS = [
    (["bad", "noop", "--cron", "61 * * * *"], "out of range"),
    (["bad", "noop", "--cron", "* * *"], "3 fields"),
    (["bad", "noop", "--cron", "0 0 31 2 *"], "never fires"),
    (
        ["bad", "noop", "--cron", "* * * * *", "--timezone", "Mars/Olympus"],
        "unknown time zone 'Mars/Olympus'",
    ),
    (["9-bad", "noop", "--cron", "* * * * *"], "schedule name '9-bad'"),
    (["bad name", "noop", "--cron", "* * * * *"], "schedule name 'bad name'"),
    (["bad", "no_such_type", "--cron", "* * * * *"], "unknown job type"),
    (["bad", "noop", "--cron", "* * * * *", "--misfire", "twice"], "misfire policy"),
    (["bad", "noop", "--cron", "* * * * *", "--priority", "urgent"], "priority"),
    (["bad", "noop", "--cron", "* * * * *", "--payload", "[1]"], "JSON object"),
    (["bad", "send_email", "--cron", "* * * * *", "--payload", "{}"], "to"),
]


def test_every_bad_add_exits_2_with_one_clear_line_and_writes_nothing(run_cli, store):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(BAD_ADDS)) as pool:  # independent commands: run them side by side
        results = list(pool.map(lambda case: run_cli("schedule", "add", *case[0]), BAD_ADDS))
    for (_, fragment), result in zip(BAD_ADDS, results, strict=False):
        assert_error(result, 2, fragment)
    assert count(store, "schedules") == 0


def test_cli_add_list_show_pause_run_now_rm(run_cli, store):
    out = run_cli(
        "schedule",
        "add",
        "report",
        "noop",
        "--cron",
        "0 9 * * MON-FRI",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"k": 1}',
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["timezone"] == "Europe/Berlin"
    assert_error(
        run_cli("schedule", "add", "report", "noop", "--cron", "* * * * *"), 1, "already exists"
    )
    listed = json.loads(run_cli("schedule", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["report"]
    assert run_cli("schedule", "pause", "report").returncode == 0
    assert "paused" in run_cli("schedule", "list").stdout
    job_id = int(run_cli("schedule", "run-now", "report").stdout)
    shown = json.loads(run_cli("schedule", "show", "report", "--next", "3", "--json").stdout)
    assert len(shown["next_fire_times"]) == 3 and shown["recent_jobs"][0]["id"] == job_id
    assert "recent jobs" in run_cli("schedule", "show", "report").stdout
    assert_error(
        run_cli("schedule", "edit", "report", "--cron", "nope"), 2, "invalid cron expression"
    )
    assert run_cli("schedule", "edit", "report", "--priority", "high").returncode == 0
    assert_error(run_cli("schedule", "show", "nothere"), 4, "schedule nothere not found")
    assert_error(run_cli("schedule", "rm", "report"), 5, "--yes")  # no terminal: refuses to delete
    assert run_cli("schedule", "rm", "report", "--yes").returncode == 0
    assert count(store, "schedules") == 0


TOML = """
[[schedules]]
name = "nightly"
type = "noop"
cron = "30 2 * * *"
timezone = "Europe/Berlin"
payload = { report = "sales" }

[[schedules]]
name = "often"
type = "noop"
cron = "*/5 * * * *"
misfire = "skip"
priority = "low"
"""

YAML = """
schedules:
  - name: nightly
    type: noop
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    payload: {report: sales}
  - name: hourly
    job_type: noop
    cron: "@hourly"
"""


def test_apply_is_idempotent_dry_run_writes_nothing_and_prune_removes(run_cli, store, tmp_path):
    toml, yaml = tmp_path / "schedules.toml", tmp_path / "schedules.yaml"
    toml.write_text(TOML)
    yaml.write_text(YAML)
    dry = json.loads(run_cli("schedule", "apply", str(toml), "--dry-run", "--json").stdout)
    assert dry == {
        "dry_run": True,
        "added": ["nightly", "often"],
        "updated": [],
        "removed": [],
        "unchanged": [],
    }
    assert count(store, "schedules") == 0
    first = json.loads(run_cli("schedule", "apply", str(toml), "--json").stdout)
    assert first["added"] == ["nightly", "often"]
    before = store._all("SELECT * FROM schedules ORDER BY name")
    second = run_cli("schedule", "apply", str(toml))
    assert second.returncode == 0 and "0 added, 0 updated, 0 removed, 2 unchanged" in second.stdout
    assert (
        store._all("SELECT * FROM schedules ORDER BY name") == before
    )  # not even updated_at moved
    # A paused schedule stays paused when the file does not say `enabled`.
    assert run_cli("schedule", "pause", "often").returncode == 0
    assert json.loads(run_cli("schedule", "apply", str(toml), "--json").stdout)["unchanged"] == [
        "nightly",
        "often",
    ]
    # The YAML file declares nightly the same, adds hourly, and leaves out often.
    dry = json.loads(
        run_cli("schedule", "apply", str(yaml), "--prune", "--dry-run", "--json").stdout
    )
    assert (dry["added"], dry["removed"], dry["unchanged"]) == (["hourly"], ["often"], ["nightly"])
    assert count(store, "schedules") == 2
    # A removal is asked, as `jq schedule rm` asks: with no terminal and no --yes, exit 5 and
    # nothing changed (it used to delete unasked).
    refused = run_cli("schedule", "apply", str(yaml), "--prune")
    assert refused.returncode == 5 and refused.stderr.startswith("jq: error:"), refused.stderr
    assert count(store, "schedules") == 2
    out = run_cli("schedule", "apply", str(yaml), "--prune", "--yes")
    assert "+ hourly (added)" in out.stdout and "- often (removed)" in out.stdout
    assert [r["name"] for r in store._all("SELECT name FROM schedules ORDER BY name")] == [
        "hourly",
        "nightly",
    ]
    yaml.write_text(YAML.replace("sales", "returns"))
    assert json.loads(run_cli("schedule", "apply", str(yaml), "--json").stdout)["updated"] == [
        "nightly"
    ]


def test_apply_of_a_bad_file_writes_nothing(run_cli, store, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        TOML
        + '\n[[schedules]]\nname = "broken"\ntype = "noop"\ncron = "* * * * *"\ntimezone = "No/Where"\n'
    )
    assert_error(
        run_cli("schedule", "apply", str(bad)), 2, "schedule 3 (broken)", "unknown time zone"
    )
    twice = tmp_path / "twice.yaml"
    twice.write_text(YAML + "  - {name: nightly, type: noop, cron: '* * * * *'}\n")
    assert_error(run_cli("schedule", "apply", str(twice)), 2, "nightly is declared more than once")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("schedules:\n  - {name: x, type: noop, cron: '* * * * *', color: red}\n")
    assert_error(run_cli("schedule", "apply", str(unknown)), 2, "unknown field(s) color")
    assert_error(run_cli("schedule", "apply", str(tmp_path / "missing.toml")), 2, "cannot read")
    assert count(store, "schedules") == 0
