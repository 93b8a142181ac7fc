"""Driver errors become jq errors in one place per service, keeping the driver's error as the
cause, and callers can tell the services apart by type. No service is reached: these build the
drivers' exceptions by hand and raise them inside each adapter's translating context."""

from __future__ import annotations

import pika.exceptions
import psycopg
import pytest
import redis.exceptions
from jq_cli.broker import Publisher
from jq_cli.errors import (
    BrokerUnavailable,
    Conflict,
    DatabaseUnavailable,
    Deadlock,
    JqError,
    SchemaNotMigrated,
    Service,
    ServiceUnavailable,
    StoreError,
    TelemetryUnavailable,
)
from jq_cli.observe.telemetry import Telemetry
from jq_cli.store import Store
from jq_cli.store.base import translate
from jq_cli.tui.source import is_database_error

PG_URL = "postgresql://jq:s3cret@127.0.0.1:5432/jq"
AMQP_URL = "amqp://guest:s3cret@127.0.0.1:5672/"
REDIS_URL = "redis://:s3cret@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (psycopg.errors.UndefinedColumn('column "nope" does not exist'), StoreError),
        (psycopg.errors.SyntaxError('syntax error at or near "SELEC"'), StoreError),
        (psycopg.errors.CheckViolation("new row violates check constraint"), StoreError),
        (
            psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
            Conflict,
        ),
        (psycopg.errors.UndefinedTable('relation "jobs" does not exist'), SchemaNotMigrated),
        (psycopg.OperationalError("connection refused"), DatabaseUnavailable),
        (
            psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
            DatabaseUnavailable,
        ),
        (psycopg.InterfaceError("the connection is closed"), DatabaseUnavailable),
    ],
)
def test_every_psycopg_error_leaving_the_store_is_a_jq_error_with_its_cause(
    driver_error: psycopg.Error, expected: type[JqError]
) -> None:
    store = Store(PG_URL, "t_unit")  # never connects: nothing is executed
    with pytest.raises(JqError) as caught, store._errors():
        raise driver_error
    assert type(caught.value) is expected
    assert caught.value.__cause__ is driver_error
    assert "s3cret" not in caught.value.message


def test_a_query_error_names_the_driver_error_and_its_sqlstate() -> None:
    error = translate(psycopg.errors.UndefinedColumn('column "nope" does not exist'), PG_URL, "ns")
    assert isinstance(error, StoreError)
    assert "UndefinedColumn 42703" in error.message
    assert 'column "nope" does not exist' in error.message
    assert error.exit_code == 1 and error.http_status == 500


def test_an_outage_names_postgresql_by_type_and_masks_the_password() -> None:
    error = translate(psycopg.OperationalError("connection refused"), PG_URL, "ns")
    assert isinstance(error, DatabaseUnavailable) and isinstance(error, ServiceUnavailable)
    assert error.service is Service.POSTGRESQL
    assert "s3cret" not in error.message and "***" in error.message
    assert error.exit_code == 3


def test_a_deadlock_is_its_own_kind_and_not_called_an_outage() -> None:
    error = translate(psycopg.errors.DeadlockDetected("deadlock detected"), PG_URL, "ns")
    assert isinstance(error, Deadlock) and isinstance(error, DatabaseUnavailable)
    assert "deadlock" in error.message and "unavailable" not in error.message
    assert "s3cret" not in error.message and str(error) == error.message


def test_a_deadlocked_statement_runs_again_and_is_logged_as_a_deadlock(caplog) -> None:
    from jq_cli.store.base import StoreBase

    store = StoreBase(PG_URL, "ns")
    runs: list[int] = []

    def run() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise Deadlock(PG_URL, "deadlock detected")
        return "done"

    with caplog.at_level("WARNING", logger="jq.store"):
        assert store.with_deadlock_retry("job_finish", run) == "done"
    assert len(runs) == 3 and caplog.text.count("event=deadlock_retried") == 2
    with pytest.raises(Deadlock):
        store.with_deadlock_retry(
            "job_finish", lambda: (_ for _ in ()).throw(Deadlock(PG_URL, "x"))
        )


@pytest.mark.parametrize(
    "driver_error",
    [
        pika.exceptions.AMQPConnectionError("connection refused"),
        pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED"),
        pika.exceptions.StreamLostError("Transport indicated EOF"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_pika_errors_go_through_the_publishers_one_translation(
    driver_error: BaseException,
) -> None:
    publisher = Publisher(AMQP_URL, "t_unit")  # connects lazily: not here
    with pytest.raises(BrokerUnavailable) as caught, publisher._errors():
        raise driver_error
    error = caught.value
    assert error.__cause__ is driver_error
    assert error.service is Service.RABBITMQ
    assert type(driver_error).__name__ in error.message
    assert "s3cret" not in error.message


def test_errors_that_are_not_the_brokers_pass_through_untouched() -> None:
    publisher = Publisher(AMQP_URL, "t_unit")
    with pytest.raises(KeyError), publisher._errors():
        raise KeyError("a bug of ours, not an outage")


def test_redis_errors_become_telemetry_unavailable_with_their_cause() -> None:
    telemetry = Telemetry(REDIS_URL, "t_unit")  # redis-py connects on first command
    driver_error = redis.exceptions.ConnectionError("Error 111 connecting")
    with pytest.raises(TelemetryUnavailable) as caught, telemetry._errors():
        raise driver_error
    assert caught.value.__cause__ is driver_error
    assert caught.value.service is Service.REDIS


def test_services_are_told_apart_by_type() -> None:
    database = DatabaseUnavailable(PG_URL, "down")
    broker = BrokerUnavailable(AMQP_URL, "down")
    telemetry = TelemetryUnavailable(REDIS_URL, "down")
    assert is_database_error(database)
    assert is_database_error(SchemaNotMigrated("run `jq db migrate`"))
    assert not is_database_error(broker)
    assert not is_database_error(telemetry)
    # The generic form still works for callers that name the service (the CLI does).
    generic = ServiceUnavailable("RabbitMQ", AMQP_URL, "down")
    assert generic.service is Service.RABBITMQ
    assert generic.message == broker.message
