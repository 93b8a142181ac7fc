"""Passwords masked in every form a service URL or DSN takes, malformed ones included, and cleared
from any text that quotes them (jq_cli.redaction)."""

from __future__ import annotations

import logging

import pytest
from jq_cli.redaction import RedactingFilter, mask_url, redact, remember, secrets_in

PW = "Canary-S3cret"


@pytest.mark.parametrize(
    "url, masked",
    [
        (f"postgresql://jq:{PW}@db/jq", "postgresql://jq:***@db/jq"),
        (f"postgresql://jq@db/jq?password={PW}", "postgresql://jq@db/jq?password=***"),
        (
            f"postgresql://jq@db/jq?sslmode=require&sslpassword={PW}&x=1",
            "postgresql://jq@db/jq?sslmode=require&sslpassword=***&x=1",
        ),
        (f"postgresql://jq:ab#{PW}@db/jq", "postgresql://jq:***@db/jq"),
        (f"postgresql://jq:ab/{PW}@db/jq", "postgresql://jq:***@db/jq"),
        (f"postgresql://jq:{PW}#x@db:5432,db2:5432/jq", "postgresql://jq:***@db:5432,db2:5432/jq"),
        (f"postgresql://jq:{PW}?x@db/jq", "postgresql://jq:***@db/jq"),
        (f"host=db user=jq password={PW} dbname=jq", "host=db user=jq password=*** dbname=jq"),
        (f"host=db password = '{PW} x' dbname=jq", "host=db password = *** dbname=jq"),
        (f"host=db password='{PW}", "host=db password=***"),
        (f"host=db password={PW} x", "host=db password=***"),
        (f"amqp://jq:{PW}@mq:5672/", "amqp://jq:***@mq:5672/"),
        (f"amqp://jq:ab#{PW}@mq/", "amqp://jq:***@mq/"),
        (f"amqps://jq:{PW}/x@mq/?cafile=/ca.pem", "amqps://jq:***@mq/?cafile=/ca.pem"),
        (f"amqp://a:{PW}@mq1/,amqp://b:{PW}#@mq2/", "amqp://a:***@mq1/,amqp://b:***@mq2/"),
        (f"redis://:{PW}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"redis://:ab#{PW}@cache/0", "redis://:***@cache/0"),
        (f"redis://u:{PW}/x@cache/0", "redis://u:***@cache/0"),
        (f"rediss://cache/0?password={PW}", "rediss://cache/0?password=***"),
        ("postgresql://localhost/jq", "postgresql://localhost/jq"),
        ("host=db dbname=jq", "host=db dbname=jq"),
    ],
)
def test_every_form_of_password_is_masked(url, masked):
    assert mask_url(url) == masked
    assert "S3cret" not in mask_url(url)


@pytest.mark.parametrize(
    "url, message",
    [
        (f"redis://:ab#{PW}@cache/0", "Port could not be cast to integer value as 'ab'"),
        (f"amqp://jq:{PW}#x@mq/", f"Port could not be cast to integer value as '{PW}'"),
        (f"host=db password={PW} S3cretTail", 'missing "=" after "S3cretTail" in connection info'),
        (f"postgresql://jq:{PW}@db/jq", f"could not connect to postgresql://jq:{PW}@db/jq"),
        (f"postgresql://jq:a%23{PW}@db/jq", f"password a#{PW} refused"),
    ],
)
def test_a_driver_message_quoting_a_password_or_a_piece_of_one_is_cleared(url, message):
    cleared = redact(message, secrets_in(url))
    assert "S3cret" not in cleared and "'ab'" not in cleared and "***" in cleared


def test_words_of_a_message_that_are_not_in_a_password_stay():
    assert redact("connection refused at 'db'", secrets_in(f"postgresql://jq:{PW}@db/jq")) == (
        "connection refused at 'db'"
    )


def test_log_records_and_their_tracebacks_are_cleared_of_known_passwords():
    remember([f"amqp://jq:{PW}@mq/"])
    try:
        raise ValueError(f"bad url amqp://jq:{PW}@mq/")
    except ValueError as exc:
        record = logging.LogRecord("jq", logging.ERROR, __file__, 1, "failed: %s", (exc,), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert RedactingFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert PW not in line and "failed: bad url" in line and "Traceback" in line


@pytest.mark.parametrize(
    "url, name",
    [
        ("postgresql://jq@db/jobs", "jobs"),
        (f"host=db user=jq password={PW} dbname=jobs", "jobs"),
        (f"host=db user=jq password={PW}", "jq"),
        ("postgresql://db", "postgres"),
    ],
)
def test_the_database_a_message_names_is_read_as_libpq_reads_it(url, name):
    from jq_cli.store.base import _database_name

    assert _database_name(url) == name  # never the DSN itself, password and all
