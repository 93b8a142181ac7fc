"""The `jq` command as an operator runs it: the real installed binary in a subprocess, against
the real services. Error cases check the exit code, the one `jq: error:` line, and that nothing
was written."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from jq_cli.client import Client
from jq_cli.store import Finish, Store

from conftest import wait_for

EMAIL = {"to": "ops@example.com", "subject": "hello", "body": "world"}
VALID_PAYLOADS = {
    "noop": {"n": 1},
    "send_email": EMAIL,
    "process_video": {"video_url": "https://example.com/v/clip.mov", "output_format": "gif"},
    "scrape_website": {"url": "https://example.com/", "selector": "h1"},
}


# -- helpers ------------------------------------------------------------------------------------


def count_jobs(store: Store, **where: object) -> int:
    clauses = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    return store._one(f"SELECT count(*) AS n FROM jobs WHERE {clauses}", where)["n"]


def count_attempts(store: Store) -> int:
    return store._one("SELECT count(*) AS n FROM attempts")["n"]


def ok(result) -> str:
    """stdout of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def one_json(result):
    """The one JSON document a --json command printed (json.loads fails on a second one)."""
    out = ok(result)
    assert out.endswith("\n") and out.count("\n") == 1, out
    return json.loads(out)


def assert_error(result, code: int, *fragments: str) -> str:
    """Exit `code`, nothing on stdout, exactly one `jq: error:` line on stderr naming `fragments`."""
    assert result.returncode == code, f"exit {result.returncode}, want {code}: {result.stderr}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jq: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def run_all(run_cli, calls):
    """Run independent `jq` invocations a few at a time: the binary's start-up dominates these tests.
    Each call is (args, stdin) or (args, stdin, extra_env); results come back in order."""

    def one(call):
        args, stdin, *env = call
        return run_cli(*args, input=stdin, extra_env=env[0] if env else None)

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(one, calls))


def check_each(cases, results, check) -> None:
    """Apply check(case, result) to every case, then fail once listing every case that failed."""
    failures = []
    for case, result in zip(cases, results, strict=False):
        try:
            check(case, result)
        except AssertionError as exc:
            failures.append(f"{case!r}: {exc}")
    assert not failures, "\n".join(failures)


def finish(store: Store, job_id: int, outcome: str, error: str | None = None) -> None:
    claimed = store.job_claim([job_id], "test-worker", 30)
    assert [c.id for c in claimed] == [job_id]
    store.job_finish([Finish(job_id, claimed[0].run_count, outcome, error=error)], "test-worker")


def dead_job(ops: Client, store: Store, job_type: str = "noop", error: str = "boom") -> int:
    job_id = ops.submit(job_type, VALID_PAYLOADS[job_type], max_retries=0)
    finish(store, job_id, "failed", error)
    assert ops.get(job_id)["state"] == "dead"
    return job_id


def completed_job(ops: Client, store: Store) -> int:
    job_id = ops.submit("noop")
    finish(store, job_id, "completed")
    return job_id


@pytest.fixture
def unmigrated(settings):
    """A namespace nobody migrated (dropped afterwards in case a command created something)."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    yield ns
    store = Store(settings.database_url, ns)
    store.drop_namespace()
    store.close()


# -- submit ---------------------------------------------------------------------------------------


def test_submit_of_each_builtin_type_prints_the_id_of_a_committed_job(run_cli, store):
    types = sorted(VALID_PAYLOADS)
    results = run_all(
        run_cli,
        [
            (["submit", t, "--payload", json.dumps(VALID_PAYLOADS[t]), "--priority", "high"], None)
            for t in types
        ],
    )

    def check(job_type, result):
        row = store.job_get(
            int(ok(result).strip())
        )  # committed: another connection sees it at once
        assert (row["job_type"], row["state"], row["priority"]) == (job_type, "queued", 3)
        assert row["payload"] == VALID_PAYLOADS[job_type]

    check_each(types, results, check)
    assert count_jobs(store) == 4


def test_submit_json_prints_exactly_one_json_document(run_cli, store):
    job = one_json(
        run_cli(
            "submit",
            "send_email",
            "--payload",
            json.dumps(EMAIL),
            "--max-retries",
            "7",
            "--queue",
            "reports",
            "--new-queue",
            "--json",
        )
    )
    assert job["state"] == "queued" and job["max_retries"] == 7 and job["queue"] == "reports"
    assert job["payload"] == EMAIL and job["attempt_history"] == []
    assert count_jobs(store, id=job["id"]) == 1


def test_submit_reads_the_payload_from_a_file(run_cli, store, tmp_path):
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(EMAIL), encoding="utf-8")
    job_id = int(ok(run_cli("submit", "send_email", "--payload", f"@{path}")))
    assert store.job_get(job_id)["payload"] == EMAIL


def test_submit_reads_the_payload_from_stdin(run_cli, store):
    payload = {"video_url": "https://example.com/a.mp4", "duration": 2.5}
    job_id = int(
        ok(run_cli("submit", "process_video", "--payload", "-", input=json.dumps(payload)))
    )
    assert store.job_get(job_id)["payload"] == payload


def test_submit_with_a_repeated_idempotency_key_returns_the_first_id(run_cli, store):
    first = ok(run_cli("submit", "noop", "--idempotency-key", "invoice-7"))
    second = ok(run_cli("submit", "noop", "--payload", "{}", "--idempotency-key", "invoice-7"))
    assert first == second
    # Another payload under the same key is someone else's request: a conflict naming the job.
    other = run_cli("submit", "noop", "--payload", '{"other": 1}', "--idempotency-key", "invoice-7")
    assert other.returncode == 1 and f"job {first.strip()}" in other.stderr
    assert count_jobs(store) == 1
    assert store.job_get(int(first))["payload"] == {}


def test_submit_with_a_delay_is_scheduled_in_the_future(run_cli, store):
    job_id = int(ok(run_cli("submit", "noop", "--delay", "30s")))
    row = store.job_get(job_id)
    assert row["state"] == "scheduled"
    # Both times come from the one insert's now(): the delay is exact, neither more nor less.
    assert row["run_at"] - row["created_at"] == timedelta(seconds=30)
    assert row["published_at"] is None


def test_submit_at_a_time_is_scheduled_at_that_time(run_cli, store):
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    job = one_json(
        run_cli("submit", "noop", "--at", when.isoformat().replace("+00:00", "Z"), "--json")
    )
    assert job["state"] == "scheduled"
    assert store.job_get(job["id"])["run_at"] == when


# -- bulk submit ----------------------------------------------------------------------------------


def jsonl(*jobs) -> str:
    return "".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs)


def test_bulk_submit_from_a_file_inserts_every_job(run_cli, store, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        jsonl(
            {"job_type": "noop", "payload": {"i": 1}},
            "",
            {"job_type": "send_email", "payload": EMAIL, "priority": "high", "max_retries": 1},
            {"job_type": "noop", "delay": "1h", "queue": "other"},
        ),
        encoding="utf-8",
    )
    result = one_json(run_cli("submit", "--file", str(path), "--new-queue", "--json"))
    assert result["count"] == 3 and result["created"] == 3
    rows = [store.job_get(i) for i in result["ids"]]
    assert [(r["job_type"], r["state"]) for r in rows] == [
        ("noop", "queued"),
        ("send_email", "queued"),
        ("noop", "scheduled"),
    ]
    assert rows[1]["priority"] == 3 and rows[1]["max_retries"] == 1 and rows[2]["queue"] == "other"


def test_bulk_submit_from_stdin(run_cli, store):
    out = ok(
        run_cli(
            "submit",
            "--file",
            "-",
            input=jsonl(*[{"job_type": "noop", "payload": {"i": i}} for i in range(50)]),
        )
    )
    assert out.startswith("submitted 50 jobs (50 new)")
    assert count_jobs(store) == 50


def test_bulk_submit_counts_repeated_idempotency_keys_once(run_cli, store):
    result = one_json(
        run_cli(
            "submit",
            "-f",
            "-",
            "--json",
            input=jsonl(
                {"job_type": "noop", "idempotency_key": "a"},
                {"job_type": "noop", "idempotency_key": "a"},
            ),
        )
    )
    assert result["count"] == 2 and result["created"] == 1 and len(set(result["ids"])) == 1
    assert count_jobs(store) == 1


BAD_LINES = [
    ('{"job_type": "noop", ', "not valid JSON"),
    ({"job_type": "no_such_type"}, "unknown job type 'no_such_type'"),
    ({"job_type": "noop", "priority": "urgent"}, "priority"),
    ({"job_type": "noop", "colour": "red"}, "colour"),
    # A field the CLI might use for its own bookkeeping is still an unknown field.
    ({"job_type": "noop", "_line": 1}, "_line"),
    ({"job_type": "send_email", "payload": {"to": "nobody"}}, "payload for send_email"),
]


def test_bulk_submit_with_a_bad_line_writes_nothing(run_cli, store, tmp_path):
    calls = []
    for n, (bad_line, _) in enumerate(BAD_LINES):
        path = tmp_path / f"jobs{n}.jsonl"
        # The bad line is line 4 of the file; the blank line 2 must not shift the number reported.
        path.write_text(
            jsonl({"job_type": "noop"}, "", {"job_type": "noop"}, bad_line, {"job_type": "noop"}),
            encoding="utf-8",
        )
        calls.append((["submit", "--file", str(path)], None))
    cases = [(line, "line 4: ", fragment) for line, fragment in BAD_LINES]
    # The same from stdin, with the bad line last in a longer file.
    calls.append(
        (
            ["submit", "--file", "-"],
            jsonl(*[{"job_type": "noop"}] * 9, {"job_type": "noop", "queue": "a b"}),
        )
    )
    cases.append(("stdin", "line 10: ", "queue"))
    results = run_all(run_cli, calls)
    check_each(cases, results, lambda case, r: assert_error(r, 2, case[1], case[2]))
    assert count_jobs(store) == 0


def test_bulk_submit_refuses_an_unusable_file(run_cli, store):
    cases = [
        (["submit", "--file", "-"], "\n\n", "no jobs"),
        (["submit", "--file", "/nonexistent/jobs.jsonl"], None, "cannot read jobs file"),
        (["submit", "noop", "--file", "-"], '{"job_type": "noop"}\n', "--file"),
    ]
    results = run_all(run_cli, [(args, stdin) for args, stdin, _ in cases])
    check_each(cases, results, lambda case, r: assert_error(r, 2, case[2]))
    assert count_jobs(store) == 0


# -- errors: one line, an exit code, nothing written ----------------------------------------------


SUBMIT_ERRORS = [
    (["submit", "no_such_type"], None, ["unknown job type 'no_such_type'"]),
    (["submit", "noop", "--payload", "[1, 2]"], None, ["payload must be a JSON object, got list"]),
    (["submit", "noop", "--payload", "{not json"], None, ["payload is not valid JSON"]),
    (["submit", "noop", "--payload", "-"], "[]", ["payload from stdin must be a JSON object"]),
    (["submit", "noop", "--payload", "@/nonexistent/p.json"], None, ["cannot read payload file"]),
    (
        ["submit", "send_email", "--payload", '{"to": "nobody", "subject": "s", "body": "b"}'],
        None,
        ["payload for send_email", "to: must be an email address"],
    ),
    (["submit", "process_video", "--payload", '{"video_url": "ftp://x/y"}'], None, ["video_url"]),
    (
        [
            "submit",
            "scrape_website",
            "--payload",
            '{"url": "https://example.com", "selector": "[["}',
        ],
        None,
        ["selector"],
    ),
    (["submit", "noop", "--priority", "urgent"], None, ["priority"]),
    (["submit", "noop", "--max-retries", "-1"], None, ["max_retries"]),
    (["submit", "noop", "--delay", "soon"], None, ["delay", "'soon'"]),
    (
        ["submit", "noop", "--delay", "30s", "--at", "2099-01-01T00:00:00Z"],
        None,
        ["--delay", "--at"],
    ),
    (["submit", "noop", "--at", "next tuesday"], None, ["run_at"]),
    (["submit"], None, ["TYPE"]),
]


def test_submit_errors_exit_2_with_one_line_and_write_nothing(run_cli, store):
    results = run_all(run_cli, [(args, stdin) for args, stdin, _ in SUBMIT_ERRORS])
    check_each(SUBMIT_ERRORS, results, lambda case, r: assert_error(r, 2, *case[2]))
    assert count_jobs(store) == 0


def test_files_that_are_not_utf8_text_exit_2_naming_them(run_cli, store, tmp_path):
    binary = tmp_path / "latin1.json"
    binary.write_bytes(
        '{"name": "Jürgen"}'.encode("latin-1")
    )  # a payload saved in the wrong encoding
    cases = [
        (
            ["submit", "noop", "--payload", f"@{binary}"],
            None,
            f"payload file {binary} is not UTF-8 text",
        ),
        (["submit", "--file", str(binary)], None, f"jobs file {binary} is not UTF-8 text"),
    ]
    results = run_all(run_cli, [(args, stdin) for args, stdin, _ in cases])
    check_each(cases, results, lambda case, r: assert_error(r, 2, case[2]))
    assert count_jobs(store) == 0


def schema_exists(store: Store, namespace: str) -> bool:
    return (
        store._one(
            "SELECT 1 AS x FROM information_schema.schemata WHERE schema_name = %s", (namespace,)
        )
        is not None
    )


def test_commands_on_an_unmigrated_database_exit_3_and_say_to_migrate(run_cli, store, unmigrated):
    commands = [["submit", "noop"], ["list"], ["purge", "--state", "dead", "--yes"]]
    results = run_all(run_cli, [(args, None, {"JQ_NAMESPACE": unmigrated}) for args in commands])
    check_each(commands, results, lambda _, r: assert_error(r, 3, "jq db migrate"))
    assert not schema_exists(store, unmigrated)


def test_commands_with_the_database_down_exit_3_naming_the_url_without_its_password(run_cli, store):
    commands = [["submit", "noop"], ["show", "1"], ["retry", "1"]]
    env = {"JQ_DATABASE_URL": "postgresql://jq:hunter2@localhost:1/jq"}

    def check(_, result):
        assert_error(result, 3, "PostgreSQL unavailable at postgresql://jq:***@localhost:1/jq")
        assert "hunter2" not in result.stderr + result.stdout

    check_each(commands, run_all(run_cli, [(args, None, env) for args in commands]), check)
    assert count_jobs(store) == 0


def test_submit_with_the_broker_down_commits_the_job_and_never_shows_the_password(run_cli, store):
    # RabbitMQ is transport only: the job is committed and the scheduler's sweeper publishes it later.
    result = run_cli(
        "submit", "noop", extra_env={"JQ_RABBITMQ_URL": "amqp://guest:s3cretpw@localhost:1/"}
    )
    job_id = int(ok(result))
    assert store.job_get(job_id)["state"] == "queued"
    assert "s3cretpw" not in result.stdout + result.stderr
    assert "RabbitMQ unavailable at amqp://guest:***@localhost:1/" in result.stderr


def test_doctor_with_the_broker_down_exits_1_without_the_password(run_cli):
    result = run_cli("doctor", extra_env={"JQ_RABBITMQ_URL": "amqp://guest:s3cretpw@localhost:1/"})
    assert result.returncode == 1
    assert "s3cretpw" not in result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert (
        lines["rabbitmq"].startswith("FAIL")
        and "amqp://guest:***@localhost:1/" in lines["rabbitmq"]
    )
    assert all(lines[name].startswith("OK") for name in ("postgresql", "schema", "redis"))


def test_doctor_with_redis_down_exits_1_naming_it(run_cli):
    result = run_cli(
        "doctor", "--json", extra_env={"JQ_REDIS_URL": "redis://:r3dispw@localhost:1/0"}
    )
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert not checks["redis"]["ok"] and checks["rabbitmq"]["ok"] and checks["postgresql"]["ok"]
    assert "r3dispw" not in result.stdout + result.stderr


def test_doctor_exits_0_with_every_check_ok(run_cli):
    out = ok(run_cli("doctor"))
    lines = out.splitlines()
    assert [line.split()[1] for line in lines] == [
        "namespace",
        "postgresql",
        "schema",
        "rabbitmq",
        "redis",
    ]
    assert all(line.startswith("OK") for line in lines), out


def test_doctor_on_an_unmigrated_database_fails_the_schema_check(run_cli, unmigrated):
    result = run_cli("doctor", extra_env={"JQ_NAMESPACE": unmigrated})
    assert result.returncode == 1
    schema = next(line for line in result.stdout.splitlines() if line.split()[1] == "schema")
    assert schema.startswith("FAIL") and "jq db migrate" in schema
    # The namespace is named, so that a typo in JQ_NAMESPACE is not read as "version 0".
    namespace = next(line for line in result.stdout.splitlines() if line.split()[1] == "namespace")
    assert unmigrated in namespace and "JQ_NAMESPACE" in schema


# -- show and list --------------------------------------------------------------------------------


def test_show_prints_the_job_and_its_attempts(run_cli, ops, store):
    job_id = dead_job(ops, store, "send_email", error="mailbox full")
    out = ok(run_cli("show", str(job_id), extra_env={"COLUMNS": "200"}))
    fields = {line.split()[0]: line.split()[1:] for line in out.splitlines()[:16] if line.strip()}
    assert (
        fields["id"] == [str(job_id)]
        and fields["type"] == ["send_email"]
        and fields["state"] == ["dead"]
    )
    assert "mailbox full" in out
    assert fields["worker"] == ["test-worker"]  # a finished job shows the worker that ran it
    # the attempts table
    attempt = next(line for line in out.splitlines() if "test-worker" in line and "failed" in line)
    assert attempt.split()[1:2] == ["1"]


def test_show_json_includes_the_attempts(run_cli, ops, store):
    job_id = dead_job(ops, store, error="first")
    ops.retry([job_id])
    finish(store, job_id, "completed")
    job = one_json(run_cli("show", str(job_id), "--json"))
    assert job["id"] == job_id and job["state"] == "completed" and job["priority"] == "medium"
    assert [(a["number"], a["outcome"], a["error"]) for a in job["attempt_history"]] == [
        (1, "failed", "first"),
        (2, "completed", None),
    ]


def test_show_of_a_missing_job_exits_4(run_cli):
    assert_error(run_cli("show", "99999"), 4, "job 99999 not found")


def test_list_filters_newest_first(run_cli, ops, store):
    # Each filter alone excludes one of these jobs: an option the CLI failed to pass on would show.
    old = ops.submit("noop", priority="high")
    store._run("UPDATE jobs SET created_at = now() - interval '2 hours' WHERE id = %s", (old,))
    match1 = ops.submit("noop", priority="high")
    scheduled = ops.submit("noop", priority="high", delay="1h")
    email = ops.submit("send_email", EMAIL, priority="high")
    low = ops.submit("noop", priority="low")
    other = ops.submit("noop", priority="high", queue="other")
    match2 = ops.submit("noop", priority="high")
    filters = [
        "--state",
        "queued",
        "--type",
        "noop",
        "--priority",
        "high",
        "--queue",
        "default",
        "--since",
        "1h",
    ]
    cases = [
        ([], [match2, other, low, email, scheduled, match1, old]),
        (filters, [match2, match1]),
        ([*filters, "--limit", "1"], [match2]),
    ]
    results = run_all(run_cli, [(["list", "--json", *args], None) for args, _ in cases])

    def check(case, result):
        got = [j["id"] for j in one_json(result)]
        assert got == case[1], f"got {got}"

    check_each(cases, results, check)


def test_list_prints_a_table(run_cli, ops):
    job_id = ops.submit("process_video", VALID_PAYLOADS["process_video"])
    out = ok(run_cli("list", extra_env={"COLUMNS": "200"}))
    assert "ID" in out and "STATE" in out
    assert str(job_id) in out and "process_video" in out and "queued" in out


def test_list_with_a_bad_filter_exits_2(run_cli):
    cases = [
        (["--state", "sleeping"], "unknown state 'sleeping'"),
        (["--priority", "urgent"], "priority"),
        (["--limit", "0"], "limit"),
        (["--since", "yesterday"], "since"),
    ]
    results = run_all(run_cli, [(["list", *args], None) for args, _ in cases])
    check_each(cases, results, lambda case, r: assert_error(r, 2, case[1]))


# -- retry, dlq, cancel ---------------------------------------------------------------------------


def test_retry_puts_a_dead_job_back_in_the_queue_with_its_history(run_cli, ops, store):
    job_id = dead_job(ops, store, error="first failure")
    assert ok(run_cli("retry", str(job_id))).split() == [str(job_id), "queued"]
    job = ops.get(job_id)
    assert job["state"] == "queued" and job["attempts"] == 0 and job["finished_at"] is None
    assert [(a["number"], a["outcome"], a["error"]) for a in job["attempt_history"]] == [
        (1, "failed", "first failure")
    ]


def test_retry_of_a_job_that_is_not_dead_is_refused(run_cli, ops, store):
    jobs = {
        "completed": completed_job(ops, store),
        "queued": ops.submit("noop"),
        "scheduled": ops.submit("noop", delay="1h"),
    }
    cases = list(jobs.items())
    results = run_all(run_cli, [(["retry", str(job_id)], None) for _, job_id in cases])
    check_each(cases, results, lambda case, r: assert_error(r, 1, f"job {case[1]} is {case[0]}"))
    assert {state: ops.get(job_id)["state"] for state, job_id in cases} == {s: s for s in jobs}


def test_retry_of_several_jobs_retries_the_dead_and_reports_the_rest(run_cli, ops, store):
    dead = dead_job(ops, store)
    done = completed_job(ops, store)
    result = run_cli("retry", str(dead), str(done), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["changed"] == [{"id": dead, "state": "queued"}]
    assert [r["id"] for r in report["refused"]] == [done]
    assert ops.get(dead)["state"] == "queued" and ops.get(done)["state"] == "completed"


def test_retry_by_state_dry_run_changes_nothing(run_cli, ops, store):
    dead = [dead_job(ops, store) for _ in range(3)]
    result = one_json(run_cli("retry", "--state", "dead", "--dry-run", "--json"))
    assert result == {"dry_run": True, "count": len(dead)}
    assert count_jobs(store, state="dead") == 3
    assert ok(run_cli("retry", "--state", "dead")).strip() == "retried 3 jobs"
    assert count_jobs(store, state="queued") == 3


def test_retry_with_bad_arguments_exits_2(run_cli, ops, store):
    completed_job(ops, store)
    cases = [
        (["retry"], "give job IDs or --state dead"),
        (["retry", "1", "--state", "dead"], "not both"),
        (["retry", "--state", "completed"], "only dead or cancelled"),
    ]
    results = run_all(run_cli, [(args, None) for args, _ in cases])
    check_each(cases, results, lambda case, r: assert_error(r, 2, case[1]))
    assert count_jobs(store, state="completed") == 1


def test_dlq_list_shows_only_dead_jobs(run_cli, ops, store):
    dead = [dead_job(ops, store, "send_email", error="no route") for _ in range(2)]
    completed_job(ops, store)
    ops.submit("noop")
    jobs = one_json(run_cli("dlq", "list", "--json"))
    assert [j["id"] for j in jobs] == dead[::-1]
    assert all(j["state"] == "dead" and j["last_error"] == "no route" for j in jobs)
    assert "no route" in ok(run_cli("dlq", "list", extra_env={"COLUMNS": "200"}))


def test_dlq_retry_of_named_jobs_and_of_all(run_cli, ops, store):
    a, b, c = (dead_job(ops, store) for _ in range(3))
    assert ok(run_cli("dlq", "retry", str(a))).split() == [str(a), "queued"]
    assert count_jobs(store, state="dead") == 2
    assert one_json(run_cli("dlq", "retry", "--all", "--json")) == {"count": 2}
    assert ops.get(b)["state"] == ops.get(c)["state"] == "queued"
    assert count_jobs(store, state="dead") == 0 and count_jobs(store, state="queued") == 3
    assert_error(run_cli("dlq", "retry"), 2, "--all")


def test_dlq_purge_deletes_dead_jobs_only(run_cli, ops, store):
    for _ in range(2):
        dead_job(ops, store)
    done = completed_job(ops, store)
    assert_error(run_cli("dlq", "purge"), 5, "--yes")
    assert count_jobs(store, state="dead") == 2
    assert one_json(run_cli("dlq", "purge", "--yes", "--json")) == {"count": 2}
    assert [j["id"] for j in ops.list_jobs()] == [done]
    assert count_attempts(store) == 1


def test_cancel_of_a_queued_job_means_it_never_runs(run_cli, ops, store, start_worker):
    job_id = ops.submit("noop")
    assert ok(run_cli("cancel", str(job_id))).split() == [str(job_id), "cancelled"]
    worker = start_worker()
    # The worker gets the cancelled job's message and must drop it as stale.
    wait_for(
        lambda: worker.worker.duplicates >= 1, what="worker dropped the cancelled job's message"
    )
    other = ops.submit("noop")
    wait_for(lambda: ops.get(other)["state"] == "completed", what="a later job completed")
    job = ops.get(job_id)
    assert job["state"] == "cancelled" and job["attempts"] == 0 and job["attempt_history"] == []


def test_cancel_of_a_finished_job_exits_1_and_of_a_missing_one_4(run_cli, ops, store):
    done = completed_job(ops, store)
    assert_error(run_cli("cancel", str(done)), 1, f"job {done} is completed")
    assert_error(run_cli("cancel", "77777"), 4, "job 77777 not found")
    assert ops.get(done)["state"] == "completed"


# -- purge ----------------------------------------------------------------------------------------


@pytest.fixture
def mixed_jobs(ops, store) -> dict[str, list[int]]:
    jobs = {
        "completed": [completed_job(ops, store) for _ in range(3)],
        "dead": [dead_job(ops, store)],
        "queued": [ops.submit("noop")],
        "scheduled": [ops.submit("noop", delay="1h")],
    }
    assert count_attempts(store) == 4
    return jobs


def test_purge_deletes_only_terminal_jobs_of_that_state_with_their_attempts(
    run_cli, ops, store, mixed_jobs
):
    assert (
        ok(run_cli("purge", "--state", "completed", "--yes")).strip() == "deleted 3 completed jobs"
    )
    remaining = sorted(j["id"] for j in ops.list_jobs())
    assert remaining == sorted(mixed_jobs["dead"] + mixed_jobs["queued"] + mixed_jobs["scheduled"])
    assert count_attempts(store) == 1


def test_purge_dry_run_deletes_nothing(run_cli, store, mixed_jobs):
    assert one_json(run_cli("purge", "--state", "completed", "--dry-run", "--json")) == {
        "dry_run": True,
        "state": "completed",
        "count": 3,
    }
    assert count_jobs(store) == 6 and count_attempts(store) == 4


def test_purge_of_a_non_terminal_state_is_refused(run_cli, store, mixed_jobs):
    states = ["queued", "running", "everything"]
    results = run_all(run_cli, [(["purge", "--state", state, "--yes"], None) for state in states])
    check_each(states, results, lambda _, r: assert_error(r, 2, "terminal state"))
    assert count_jobs(store) == 6


def test_purge_without_yes_and_without_a_terminal_refuses(run_cli, store, mixed_jobs):
    # stdin is a pipe, not a tty: nobody can answer the question, and --json is no consent.
    variants = [[], ["--json"]]
    results = run_all(
        run_cli, [(["purge", "--state", "completed", *extra], "") for extra in variants]
    )
    check_each(variants, results, lambda _, r: assert_error(r, 5, "--yes"))
    assert count_jobs(store) == 6 and count_attempts(store) == 4


def test_purge_older_than_spares_recent_jobs(run_cli, ops, store, mixed_jobs):
    old = mixed_jobs["completed"][0]
    store._run("UPDATE jobs SET finished_at = now() - interval '8 days' WHERE id = %s", (old,))
    assert (
        one_json(run_cli("purge", "--state", "completed", "--older-than", "7d", "--yes", "--json"))[
            "count"
        ]
        == 1
    )
    assert count_jobs(store, state="completed") == 2 and count_jobs(store, id=old) == 0


# -- stats and the schema -------------------------------------------------------------------------


def test_stats_json_counts_match_the_database(run_cli, ops, store):
    for priority in ("high", "high", "low"):
        ops.submit("noop", priority=priority)
    ops.submit("noop", queue="reports")
    ops.submit("noop", delay="1h")
    dead_job(ops, store)
    completed_job(ops, store)
    stats = one_json(run_cli("stats", "--json"))
    truth = {
        r["state"]: r["n"]
        for r in store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    }
    assert truth == {"queued": 4, "scheduled": 1, "dead": 1, "completed": 1}
    assert stats["by_state"] == {
        s: truth.get(s, 0)
        for s in (
            "waiting",
            "scheduled",
            "queued",
            "running",
            "retrying",
            "completed",
            "dead",
            "cancelled",
        )
    }
    assert stats["queued_by_priority"] == {"high": 2, "medium": 1, "low": 1}
    assert stats["queues"]["default"]["queued"] == 3 and stats["queues"]["reports"]["queued"] == 1
    assert stats["broker_error"] is None and stats["workers"] == []


def test_stats_prints_tables(run_cli, ops):
    ops.submit("noop")
    out = ok(run_cli("stats", extra_env={"COLUMNS": "200"}))
    assert "jobs by state" in out and "queued by priority: high 0, medium 1, low 0" in out


def test_db_migrate_twice_changes_nothing(run_cli, store, unmigrated):
    env = {"JQ_NAMESPACE": unmigrated}
    status = run_cli("db", "status", "--json", extra_env=env)
    assert status.returncode == 3 and json.loads(status.stdout)["version"] == 0
    first = one_json(run_cli("db", "migrate", "--json", extra_env=env))
    assert first["applied"] and first["version"] >= 1
    second = one_json(run_cli("db", "migrate", "--json", extra_env=env))
    assert second == {"database_created": False, "applied": [], "version": first["version"]}
    assert one_json(run_cli("db", "status", "--json", extra_env=env)) == {
        "namespace": unmigrated,
        "version": first["version"],
        "latest": first["version"],
        "up_to_date": True,
    }


def test_db_status_of_an_unmigrated_database_says_to_migrate_and_exits_3(run_cli, unmigrated):
    result = run_cli("db", "status", extra_env={"JQ_NAMESPACE": unmigrated})
    assert result.returncode == 3  # the exit-code table: the schema not migrated
    assert "schema version 0 of" in result.stdout and "jq db migrate" in result.stdout
    assert f"namespace {unmigrated!r}" in result.stdout and "JQ_NAMESPACE" in result.stdout


def test_db_status_of_a_migrated_database_is_up_to_date(run_cli, settings):
    out = ok(run_cli("db", "status"))
    version = out.split()[2]
    assert (
        out.strip() == f"schema version {version} of {version} in namespace {settings.namespace!r}"
    )


def test_malformed_broker_and_redis_urls_give_one_line_not_a_traceback(run_cli, store):
    env = {
        "JQ_RABBITMQ_URL": "amqp://guest:pw1secret@localhost:notaport/",
        "JQ_REDIS_URL": "redis://:pw2secret@localhost:notaport/0",
    }
    submit = run_cli("submit", "noop", extra_env=env)
    # The job was committed before the publish failed: submit must report it, not crash.
    job_id = int(ok(submit))
    doctor, stats = run_all(run_cli, [(["doctor"], None, env), (["stats", "--json"], None, env)])
    assert store.job_get(job_id)["state"] == "queued"
    assert doctor.returncode == 1
    checks = {line.split()[1]: line for line in doctor.stdout.splitlines()}
    assert checks["rabbitmq"].startswith("FAIL") and checks["redis"].startswith("FAIL")
    assert checks["postgresql"].startswith("OK")
    data = one_json(stats)
    assert data["by_state"]["queued"] == 1 and data["broker_error"] and data["telemetry_error"]
    for result in (submit, doctor, stats):
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        assert "pw1secret" not in output and "pw2secret" not in output
