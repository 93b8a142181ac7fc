"""The services' own limits, measured in the same run as the queues: what PostgreSQL and
RabbitMQ do with no queue library in between. Each figure is one client on one connection, in
a schema or queue of the bench's own that is removed afterwards."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
import psycopg
from jq_cli.config import load_settings

TABLE = "(id bigserial PRIMARY KEY, state text NOT NULL DEFAULT 'queued', payload jsonb)"


@dataclass(frozen=True)
class LimitSizes:
    insert_rows: int = 2_000
    copy_rows: int = 20_000
    claim_rows: tuple[int, int] = (2_000, 10_000)  # claimed 1 and 10 a commit
    messages: int = 20_000


QUICK_LIMITS = LimitSizes(insert_rows=500, copy_rows=2_000, claim_rows=(500, 1_000), messages=2_000)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def insert_commit_per_s(url: str, schema: str, rows: int) -> float:
    """The single-row insert commit alone, in a schema of its own: the yardstick the bench also
    takes right beside each contestant's one-by-one submits, because on a shared machine the
    fsync rate can change several-fold between the start of a run and a contestant's turn."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"CREATE TABLE {schema}.jobs {TABLE}")
            start = time.perf_counter()
            for _ in range(rows):
                conn.execute(f"INSERT INTO {schema}.jobs (payload) VALUES (%s::jsonb)", ("{}",))
            return rows / (time.perf_counter() - start)
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _postgres(url: str, schema: str, sizes: LimitSizes) -> dict[str, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"SET search_path = {schema}")
            conn.execute(f"CREATE TABLE jobs {TABLE}")
            conn.execute("CREATE INDEX ON jobs (id) WHERE state = 'queued'")

            def insert() -> None:  # autocommit: one commit (one WAL flush) per row
                for _ in range(sizes.insert_rows):
                    conn.execute("INSERT INTO jobs (payload) VALUES (%s::jsonb)", ("{}",))

            def copy() -> None:
                with conn.transaction(), conn.cursor().copy("COPY jobs (payload) FROM STDIN") as cp:
                    for _ in range(sizes.copy_rows):
                        cp.write_row(("{}",))

            figures = {
                "insert_commit_per_s": sizes.insert_rows / _timed(insert),
                "copy_per_s": sizes.copy_rows / _timed(copy),
            }
            for per_commit, rows in zip((1, 10), sizes.claim_rows, strict=True):
                conn.execute("TRUNCATE jobs")
                with conn.transaction(), conn.cursor().copy("COPY jobs (payload) FROM STDIN") as cp:
                    for _ in range(rows):
                        cp.write_row(("{}",))
                conn.execute("VACUUM ANALYZE jobs")

                def claim(k: int = per_commit) -> None:
                    while conn.execute(
                        "UPDATE jobs SET state = 'running' WHERE id IN (SELECT id FROM jobs "
                        "WHERE state = 'queued' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                        "RETURNING id",
                        (k,),
                    ).fetchall():
                        pass

                figures[f"skip_locked_{per_commit}_per_s"] = rows / _timed(claim)
            return figures
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _rabbitmq(url: str, queue: str, sizes: LimitSizes) -> dict[str, float]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.queue_declare(queue, durable=True)
        body = b'{"job_id": 1}'
        persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

        def publish() -> None:  # persistent messages to a durable queue, no publisher confirms
            for _ in range(sizes.messages):
                channel.basic_publish("", queue, body, persistent)

        publish_s = _timed(publish)
        while channel.queue_declare(queue, passive=True).method.message_count < sizes.messages:
            conn.sleep(0.01)  # the broker has taken them all in before we consume
        channel.basic_qos(prefetch_count=100)
        got = [0]

        def on_message(ch, method, _props, _body) -> None:
            ch.basic_ack(method.delivery_tag)  # one ack a message, as a queue's worker does
            got[0] += 1
            if got[0] >= sizes.messages:
                ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        consume_s = _timed(channel.start_consuming)
        with contextlib.suppress(Exception):
            channel.queue_delete(queue)
        return {
            "publish_persistent_per_s": sizes.messages / publish_s,
            "consume_ack_per_s": sizes.messages / consume_s,
        }
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def measure(run_id: str, sizes: LimitSizes) -> dict[str, Any]:
    settings = load_settings()
    name = f"bench_{run_id}_limits"
    return {
        **_postgres(settings.database_url, name, sizes),
        **_rabbitmq(settings.rabbitmq_url, name, sizes),
        "sizes": sizes.__dict__,
    }
