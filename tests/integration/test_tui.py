"""`jq top` against the real services: Textual's headless harness (App.run_test and the pilot)
drives the dashboard, and the database says whether it showed and did the right thing.

Snapshots (SVG, pytest-textual-snapshot) live in tests/integration/__snapshots__/test_tui/. After an
intended change to the look of the dashboard, review and accept the new pictures with
    .venv/bin/pytest tests/integration/test_tui.py -k snapshot --snapshot-update
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from jq_cli.client import Client
from jq_cli.tui.app import TopApp
from jq_cli.tui.screens.confirm import ConfirmScreen
from jq_cli.tui.screens.job_detail import JobDetailScreen
from jq_cli.tui.widgets.jobs_panel import FilterInput
from jq_cli.tui.widgets.row_table import RowTable

from conftest import make_settings, wait_for

FROZEN = datetime(2024, 1, 1, 12, 5, tzinfo=UTC)
EMAIL = {"to": "ops@example.com", "subject": "s", "body": "b"}


async def until(pilot, predicate: Callable[[], object], what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


def table_ids(app: TopApp, table_id: str = "jobs-table") -> list[int]:
    return [int(k.value) for k in app.screen.query_one(f"#{table_id}", RowTable).rows]


def notes(app: TopApp, fragment: str) -> list[str]:
    """The app's notifications that contain `fragment`, oldest first."""
    return [n.message for n in app._notifications if fragment in n.message]


def run(coro) -> None:
    asyncio.run(coro)


@pytest.fixture
def app_ops(settings):
    """The app's own Client: Client is not thread-safe, and the app calls it from a thread."""
    with Client(settings) as o:
        yield o


def submit_mix(ops: Client) -> dict[str, list[int]]:
    ids = {
        "high": [ops.submit("send_email", EMAIL, priority="high") for _ in range(3)],
        "low": [ops.submit("noop", {}, priority="low", queue="reports") for _ in range(2)],
        "scheduled": [ops.submit("noop", {}, delay="1h")],
        "cancelled": [ops.submit("noop", {}, queue="other") for _ in range(2)],
    }
    ops.cancel(ids["cancelled"])
    return ids


def test_counts_match_the_database(ops, app_ops, store):
    submit_mix(ops)

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.snapshots, "the first refresh")
            counts = app.screen.query_one("#counts").stats
            db = {
                r["state"]: r["n"]
                for r in store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
            }
            assert (
                {s: n for s, n in counts["by_state"].items() if n}
                == db
                == {"queued": 5, "scheduled": 1, "cancelled": 2}
            )
            assert counts["queued_by_priority"] == {"high": 3, "medium": 0, "low": 2}
            assert {q: v["queued"] for q, v in counts["queues"].items()} == {
                "default": 3,
                "reports": 2,
            }
            assert len(table_ids(app)) == 8
            text = str(app.screen.query_one("#counts").render())
            assert "queued    5" in text and "cancelled 2" in text and "reports 2" in text

    run(scenario())


def test_keys_retry_dead_jobs_and_the_database_shows_it(ops, app_ops, store, start_worker):
    worker = start_worker()
    dead = [
        ops.submit("send_email", {**EMAIL, "failure_rate": 1.0}, max_retries=0) for _ in range(3)
    ]
    wait_for(lambda: set(store.job_states(dead).values()) == {"dead"}, what="three dead jobs")
    worker.stop()

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: len(table_ids(app, "dead-table")) == 3, "the dead letters")
            while app.focused is None or app.focused.id != "dead-table":  # Tab between panels
                await pilot.press("tab")
            await pilot.press("j")  # the second newest dead job
            selected = int(app.focused.selected_key())
            assert selected == dead[1]
            await pilot.press("r")
            await until(
                pilot,
                lambda: store.job_states([selected])[selected] == "queued",
                "the retried job queued",
            )
            assert set(store.job_states([dead[0], dead[2]]).values()) == {"dead"}
            await until(
                pilot, lambda: selected not in table_ids(app, "dead-table"), "the panel to drop it"
            )

            await pilot.press("R")  # every dead job of the filter, after a confirmation
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert "Retry 2 dead jobs" in app.screen.question
            await pilot.press("y")
            await until(
                pilot, lambda: set(store.job_states(dead).values()) == {"queued"}, "all retried"
            )
            history = store.job_get(selected)["attempt_history"]
            assert len(history) == 1 and history[0]["outcome"] == "failed"  # kept across the retry

            await pilot.press("enter")  # a refused action shows its error; the app carries on
            await until(
                pilot, lambda: app.snapshots and not table_ids(app, "dead-table"), "an empty panel"
            )
            app.screen.query_one("#jobs-table").focus()
            await pilot.press("r")
            await until(
                pilot,
                lambda: any("only dead or cancelled" in n.message for n in app._notifications),
                "the refusal shown",
            )

    run(scenario())


def test_cancel_purge_and_detail(ops, app_ops, store):
    ids = [ops.submit("noop", {"n": n}) for n in range(3)]

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(table_ids(app)) == 3, "the jobs")
            await pilot.press("c")  # the newest job, selected first: asks, as R and p do
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert f"Cancel job {ids[2]}?" in app.screen.question
            await pilot.press("n")
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the answer")
            await pilot.pause(0.3)
            assert store.job_states([ids[2]])[ids[2]] == "queued"  # "no" cancelled nothing
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("y")
            await until(
                pilot, lambda: store.job_states([ids[2]])[ids[2]] == "cancelled", "the cancel"
            )
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail screen")
            assert app.screen.job_id == ids[2]
            assert app.screen.job["payload"] == {"n": 2} and app.screen.job["state"] == "cancelled"
            await pilot.press("escape")
            await until(
                pilot, lambda: not isinstance(app.screen, JobDetailScreen), "back to the dashboard"
            )

            await pilot.press("p")  # not on a finished state: says how, deletes nothing
            await until(
                pilot,
                lambda: any("purge deletes finished" in n.message for n in app._notifications),
                "the purge hint",
            )
            await pilot.press("slash")
            app.screen.query_one(FilterInput).value = "state:cancelled"
            await pilot.press("enter")
            await until(pilot, lambda: table_ids(app) == [ids[2]], "the cancelled filter")
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            await pilot.press("n")
            await until(pilot, lambda: notes(app, "purge: not done"), "the answer taken as no")
            # Asked again, the dry run still counts the job (a purge run by the "no" would have
            # taken the app's operations lock first), and the "yes" deletes exactly that one:
            # had the "no" deleted it, the "yes" would report 0, or there would be two reports.
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert store.job_states(ids)[ids[2]] == "cancelled"
            await pilot.press("y")
            await until(pilot, lambda: ids[2] not in store.job_states(ids), "the purge")
            await until(pilot, lambda: notes(app, "deleted"), "the purge's report")
            assert notes(app, "deleted") == ["deleted 1 cancelled job"]
            assert sorted(store.job_states(ids)) == ids[:2]

    run(scenario())


def test_purge_deletes_the_count_confirmed_not_what_finished_since(ops, app_ops, store):
    ids = [ops.submit("noop", {"n": n}) for n in range(3)]
    ops.cancel(ids[:2])

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("slash")
            app.screen.query_one(FilterInput).value = "state:cancelled"
            await pilot.press("enter")
            await until(pilot, lambda: sorted(table_ids(app)) == ids[:2], "the cancelled filter")
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
            assert "Delete 2 cancelled jobs" in app.screen.question
            ops.cancel([ids[2]])  # one more matches the filter while the question is open
            await pilot.press("y")
            await until(pilot, lambda: notes(app, "deleted"), "the purge's report")
            # The notice says the number confirmed, and that is what went.
            assert notes(app, "deleted") == ["deleted 2 cancelled jobs"]
            assert store.job_states(ids) == {ids[2]: "cancelled"}

    run(scenario())


def test_filters_narrow_the_table(ops, app_ops):
    mix = submit_mix(ops)

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: len(table_ids(app)) == 8, "all jobs")

            async def apply(text: str, expected: list[int]):
                await pilot.press("slash")
                app.screen.query_one(
                    FilterInput
                ).value = text  # typing it key by key is slow in the pilot
                await pilot.press("enter")
                await until(
                    pilot,
                    lambda: sorted(table_ids(app)) == sorted(expected),
                    f"the filter {text!r}",
                )

            await pilot.press(
                "slash", *"state:cancelled", "enter"
            )  # typed once, as an operator would
            await until(
                pilot, lambda: sorted(table_ids(app)) == mix["cancelled"], "the cancelled jobs"
            )
            await apply("priority:high", mix["high"])
            await apply("queue:reports", mix["low"])
            await apply("type:noop state:queued", mix["low"])
            await apply("send_email", mix["high"])  # `/` searches a bare word as a type
            await apply(str(mix["scheduled"][0]), mix["scheduled"])  # and a bare number as an id
            assert "id:" in app.screen.query_one("#jobs").border_title
            await pilot.press("escape")  # clears the filter
            await until(pilot, lambda: len(table_ids(app)) == 8, "the filter cleared")
            await pilot.press("slash")
            app.screen.query_one(FilterInput).value = "state:nope"
            await pilot.press("enter")
            await until(
                pilot,
                lambda: any("unknown state" in n.message for n in app._notifications),
                "a bad filter refused",
            )

    run(scenario())


KEY_COLUMNS = {
    "jobs-table": ("ID", "TYPE", "PRIO", "STATE", "TRIES"),
    "workers-table": ("NAME", "RUN", "BEAT"),
    "dead-table": ("ID", "TYPE", "AGE"),
}


def test_at_80x24_every_panel_keeps_its_key_columns(ops, app_ops, store):
    """The columns an operator reads a panel by are within its width, not scrolled off."""
    ops.submit("process_video", {"video_url": "https://example.com/a.mov"}, queue="reports")
    dead = ops.submit("send_email", {"to": "a@example.com", "subject": "s", "body": "b"})
    store._run(
        "UPDATE jobs SET state = 'dead', finished_at = now(), last_error = %s WHERE id = %s",
        ("DeliveryFailed: " + "x" * 200, dead),
    )
    app_ops.telemetry.heartbeat(
        "worker-host.eu-west-1.compute.internal:123456:0a1b2c",
        {
            "running": 8,
            "concurrency": 64,
            "processed": 1234567,
            "failed": 12345,
            "queues": ["default", "reports"],
            "host": "worker-host.eu-west-1.compute.internal",
            "pid": 123456,
        },
        ttl=60,
    )

    async def scenario():
        app = TopApp(app_ops, refresh=0.2)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(
                pilot,
                lambda: (
                    table_ids(app, "dead-table")
                    and app.screen.query_one("#workers-table").row_count
                ),
                "every panel filled",
            )
            # The widest BEAT cell is a stale worker's: no heartbeat follows this one.
            workers = app.screen.query_one("#workers-table", RowTable)
            await until(pilot, lambda: "STALE" in str(workers.get_row_at(0)[2]), "the worker stale")
            await pilot.pause()
            for table_id, keys in KEY_COLUMNS.items():
                table = app.screen.query_one(f"#{table_id}", RowTable)
                labels = [str(c.label) for c in table.columns.values()]
                assert labels[: len(keys)] == list(keys), table_id
                widths = [c.get_render_width(table) for c in table.columns.values()]
                needed = sum(widths[: len(keys)])
                assert needed <= table.scrollable_content_region.width, (table_id, widths)

    run(scenario())


def test_survives_telemetry_and_database_outages(ops, settings, store):
    ids = [ops.submit("noop", {}) for _ in range(2)]
    no_redis = make_settings(settings.namespace, redis_url="redis://127.0.0.1:1/0")
    no_postgres = make_settings(settings.namespace, database_url="postgresql://127.0.0.1:1/jq_test")

    async def scenario():
        with Client(no_redis) as app_ops:
            app = TopApp(app_ops, refresh=0.2)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: app.snapshots, "the first refresh")
                assert "telemetry unavailable" in str(app.screen.query_one("#rates").render())
                assert "telemetry unavailable" in str(
                    app.screen.query_one("#workers .note").render()
                )
                assert sorted(table_ids(app)) == ids  # the rest keeps working, actions too
                await pilot.press("c")
                await until(
                    pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation"
                )
                await pilot.press("y")
                await until(
                    pilot, lambda: store.job_states([ids[1]])[ids[1]] == "cancelled", "the cancel"
                )

                # Postgres drops the app's connection: the app says so and reconnects by itself.
                pid = app_ops.store.conn.info.backend_pid
                store._all("SELECT pg_terminate_backend(%s) AS done", (pid,))
                await until(pilot, lambda: app.outages == 1, "the outage noticed")
                await until(pilot, lambda: not app.snapshot.database_error, "the reconnect")
                assert app_ops.store.conn.info.backend_pid != pid

        with Client(no_postgres) as app_ops:
            app = TopApp(app_ops, refresh=0.2)
            async with app.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: app.snapshots >= 2, "two refreshes")
                assert "PostgreSQL unavailable, reconnecting" in str(
                    app.screen.query_one("#status").render()
                )

    run(scenario())


def test_once_prints_one_plain_snapshot(ops, run_cli):
    mix = submit_mix(ops)
    done = run_cli("top", "--once")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "queued    5" in out
        and "cancelled 2" in out
        and "queued by queue: default 3  reports 2" in out
    )
    assert "submitted" in out and "workers (0)" in out and "dead letters (0)" in out
    assert all(f"\n{i} " in out for ids in mix.values() for i in ids)
    assert "\x1b" not in out  # plain text, for scripts


# -- snapshots ------------------------------------------------------------------------------------


class Labelled:
    """The operations under a fixed namespace label, so that pictures do not depend on the test's
    random namespace (the app only reads settings for its labels)."""

    def __init__(self, ops: Client):
        self._ops = ops
        self.settings = ops.settings.model_copy(update={"namespace": "jq"})

    def __getattr__(self, name: str):
        return getattr(self._ops, name)


@pytest.fixture
def frozen_ops(ops, app_ops, store, monkeypatch):
    """A fixed mix whose timestamps are pinned, for an app whose clock is frozen at FROZEN."""
    # Textual renders in monochrome when NO_COLOR is set (a CI runner may set it): the snapshots
    # are in colour whatever the environment of the run.
    monkeypatch.delenv("NO_COLOR", raising=False)
    for _n in range(4):
        ops.submit("send_email", EMAIL, priority="high")
    ops.submit("process_video", {"video_url": "https://example.com/talk.mov"}, queue="reports")
    ops.submit("noop", {}, priority="low", delay="1h")
    store._run("""
        UPDATE jobs SET created_at = '2024-01-01 12:00:00+00'::timestamptz + id * interval '10 seconds',
                        run_at = '2024-01-01 12:00:00+00'::timestamptz + id * interval '10 seconds'
    """)
    store._run("""
        UPDATE jobs SET state = 'dead', attempts = 4, run_count = 4, last_error = 'DeliveryFailed: 550 mailbox full',
                        started_at = created_at, finished_at = created_at + interval '2 seconds' WHERE id = 1
    """)
    store._run("""
        INSERT INTO attempts (job_id, number, worker, started_at, finished_at, outcome, error, traceback)
        SELECT 1, n, 'host:42:abc', '2024-01-01 12:00:10+00'::timestamptz + n * interval '1 minute',
               '2024-01-01 12:00:10.5+00'::timestamptz + n * interval '1 minute', 'failed',
               'DeliveryFailed: 550 mailbox full',
               E'Traceback (most recent call last):\\n  File "jobs.py", line 9, in send_email\\nDeliveryFailed: 550 mailbox full'
        FROM generate_series(1, 4) AS n
    """)
    store._run("""
        UPDATE jobs SET state = 'completed', attempts = 1, result = '{"delivered_to": "ops@example.com"}',
                        started_at = created_at, finished_at = created_at + interval '150 milliseconds' WHERE id = 2
    """)
    store._run("""
        UPDATE jobs SET state = 'running', attempts = 1, progress = 40, worker = 'host:42:abc',
                        started_at = created_at WHERE id = 5
    """)
    return Labelled(app_ops)


def frozen_app(ops) -> TopApp:
    return TopApp(ops, refresh=60, clock=lambda: FROZEN)


async def loaded(pilot) -> None:
    await until(pilot, lambda: pilot.app.snapshots, "the first refresh")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_dashboard(snap_compare, frozen_ops, size):
    assert snap_compare(frozen_app(frozen_ops), terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_job_detail(snap_compare, frozen_ops, size):
    async def open_dead_job(pilot) -> None:
        await loaded(pilot)
        await pilot.press("tab", "tab", "tab", "enter")  # the dead-letter panel, its first job
        await until(
            pilot, lambda: isinstance(pilot.app.screen, JobDetailScreen), "the detail screen"
        )
        await pilot.pause()

    assert snap_compare(frozen_app(frozen_ops), terminal_size=size, run_before=open_dead_job)


def test_snapshot_help(snap_compare, frozen_ops):
    async def open_help(pilot) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(frozen_app(frozen_ops), terminal_size=(80, 24), run_before=open_help)


def test_the_detail_shows_no_old_progress_nor_a_past_error_as_current(ops, store):
    from jq_cli.tui.screens.job_detail import job_renderable
    from rich.console import Console

    requeued = ops.submit("noop", {})
    done = ops.submit("noop", {})
    store._run("UPDATE jobs SET progress = 60, attempts = 1 WHERE id = %s", (requeued,))
    store._run(
        "UPDATE jobs SET state = 'completed', attempts = 2, last_error = 'boom', progress = 100,"
        " finished_at = now() WHERE id = %s",
        (done,),
    )

    def fields(job_id: int) -> dict[str, str]:
        console = Console(width=120, record=True)
        console.print(job_renderable(ops.get(job_id), datetime.now(UTC)))
        lines = console.export_text().splitlines()
        return {line[:16].strip(): line[16:].strip() for line in lines if line[:16].strip()}

    assert fields(requeued)["progress"] == "-"
    shown = fields(done)
    assert shown["last error"] == "-" and shown["progress"] == "100%"
