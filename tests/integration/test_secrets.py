"""No secret in any output, log line, error or traceback: a canary password rides in every URL
(the services here ignore it or are unreachable), and nothing the run prints may contain it."""

from __future__ import annotations

import getpass
import signal
import subprocess

import pytest

from conftest import JQ, wait_for

CANARY = "Canary-S3cret-7f3a9"


def _with_password(url: str, password: str = CANARY) -> str:
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return (
        f"{scheme}://{getpass.getuser()}:{password}@{rest}"  # trust auth: the password is ignored
    )


def test_no_command_or_daemon_prints_the_password(settings, env, run_cli, spawn, tmp_path):
    # Postgres here trusts local connections, so a password in its URL is ignored and the commands
    # work; RabbitMQ and Redis URLs with the canary point at closed ports, so they fail loudly.
    secret_env = {
        "JQ_DATABASE_URL": _with_password(settings.database_url),
        "JQ_RABBITMQ_URL": f"amqp://jq:{CANARY}@127.0.0.1:1/",
        "JQ_REDIS_URL": f"redis://:{CANARY}@127.0.0.1:1/0",
    }
    outputs = []
    for args in (
        ["submit", "noop"],
        ["submit", "noop", "--json"],
        ["show", "1"],
        ["list"],
        ["stats"],
        ["stats", "--json"],
        ["doctor"],
        ["doctor", "--json"],
        ["db", "status"],
        ["submit", "nope"],
        ["retry", "1"],
    ):
        result = run_cli(*args, extra_env=secret_env)
        assert result.returncode in (0, 1, 2), (args, result.stderr)  # Postgres reached: no exit 3
        outputs.append((args, result.stdout + result.stderr))
    # A database that is down: the error names the URL.
    down = run_cli(
        "list",
        extra_env={**secret_env, "JQ_DATABASE_URL": f"postgresql://jq:{CANARY}@127.0.0.1:1/jq"},
    )
    assert down.returncode == 3 and "127.0.0.1:1" in down.stderr
    outputs.append((["list (db down)"], down.stdout + down.stderr))
    # The daemons log their outages; run each briefly with the canary everywhere.
    for daemon, outage in (
        ("worker", "event=broker_unavailable"),
        ("scheduler", "event=publish_deferred"),
    ):
        log = tmp_path / f"{daemon}.log"
        with open(log, "w") as sink:
            proc = subprocess.Popen(
                [JQ, daemon],
                env={**env, **secret_env, "JQ_LOG_LEVEL": "DEBUG"},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                if daemon == "scheduler":  # give it something to publish, so it meets the broker
                    run_cli("submit", "noop", "--delay", "0.2s", extra_env=secret_env)
                wait_for(
                    lambda outage=outage, log=log: outage in log.read_text(),
                    20,
                    what=lambda daemon=daemon, log=log: (
                        f"{daemon} to log its outage; its log so far: {log.read_text()[-2000:]!r}"
                    ),
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        outputs.append(([daemon], log.read_text()))
    leaked = [args for args, text in outputs if CANARY in text]
    assert leaked == [], f"the password appeared in the output of {leaked}"
    assert any("***" in text for _, text in outputs), (
        "URLs should be shown with the password masked"
    )


# -- every form a password takes in a URL or DSN, malformed ones included -------------------------

CLOSED = "127.0.0.1:1"  # nothing listens: each command meets an outage or a parse error


@pytest.mark.parametrize(
    "setting, url",
    [
        ("JQ_DATABASE_URL", f"postgresql://jq@{CLOSED}/jq?password={CANARY}"),
        ("JQ_DATABASE_URL", f"host=127.0.0.1 port=1 user=jq password={CANARY} dbname=jq"),
        ("JQ_DATABASE_URL", f"host=127.0.0.1 port=1 password='{CANARY} x' dbname=jq"),
        ("JQ_DATABASE_URL", f"host=127.0.0.1 port=1 password={CANARY} broken"),
        ("JQ_DATABASE_URL", f"postgresql://jq:ab#{CANARY}@{CLOSED}/jq"),
        ("JQ_DATABASE_URL", f"postgresql://jq:{CANARY}/x@{CLOSED}/jq"),
        ("JQ_RABBITMQ_URL", f"amqp://jq:ab#{CANARY}@{CLOSED}/"),
        ("JQ_RABBITMQ_URL", f"amqp://jq:{CANARY}/x@{CLOSED}/"),
        ("JQ_REDIS_URL", f"redis://:{CANARY}#x@{CLOSED}/0"),
        ("JQ_REDIS_URL", f"redis://u:ab/{CANARY}@{CLOSED}/0"),
        ("JQ_REDIS_URL", f"redis://{CLOSED}/0?password={CANARY}"),
    ],
    ids=lambda v: v if v.startswith("JQ_") else v.replace(CANARY, "PW"),
)
def test_no_form_of_password_reaches_any_output(run_cli, setting, url):
    # Both renderings of doctor (which names every URL), and one command that reaches the service
    # and fails on it (the one error line): PostgreSQL and RabbitMQ by a submit, Redis by stats.
    # Every other command shares that error line; the test above runs them all with one form.
    reaches = ["stats"] if setting == "JQ_REDIS_URL" else ["submit", "noop"]
    for args in (["doctor"], ["doctor", "--json"], reaches):
        result = run_cli(*args, extra_env={setting: url}, timeout=30)
        output = result.stdout + result.stderr
        assert "S3cret" not in output and "Canary" not in output, (args, output[-1000:])


@pytest.mark.parametrize(
    "setting, url, logged",
    [
        ("JQ_DATABASE_URL", f"host=127.0.0.1 port=1 password={CANARY} dbname=jq", "database"),
        ("JQ_RABBITMQ_URL", f"amqp://jq:ab#{CANARY}@{CLOSED}/", "RabbitMQ"),
        ("JQ_REDIS_URL", f"redis://u:{CANARY}/x@{CLOSED}/0", "Redis"),
    ],
    ids=["dsn", "amqp-hash", "redis-slash"],
)
def test_the_worker_log_holds_no_form_of_password(env, tmp_path, setting, url, logged):
    log = tmp_path / "worker.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            [JQ, "worker"],
            env={**env, setting: url, "JQ_LOG_LEVEL": "DEBUG"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: logged in log.read_text(), 20, what=lambda: log.read_text()[-2000:])
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    text = log.read_text()
    assert "S3cret" not in text and "Canary" not in text, text[-2000:]
