"""Transactional enqueue through SQLAlchemy (psycopg driver) and Django, against the real
PostgreSQL: the job commits and rolls back with the framework's transaction."""

from __future__ import annotations

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")
from sqlalchemy import orm, text  # noqa: E402

from conftest import DATABASE_URL  # noqa: E402


def job_count(store) -> int:
    return store._one("SELECT count(*) AS n FROM jobs")["n"]


@pytest.fixture
def engine():
    e = sqlalchemy.create_engine(DATABASE_URL.replace("postgresql://", "postgresql+psycopg://"))
    yield e
    e.dispose()


def test_sqlalchemy_session_commits_and_rolls_back_the_job_with_its_rows(ops, store, engine):
    with orm.Session(engine) as session:
        session.execute(text("CREATE TEMP TABLE orders (id int)"))
        session.execute(text("INSERT INTO orders VALUES (1)"))
        ops.submit("noop", {"order": 1}, connection=session)
        session.rollback()
    assert job_count(store) == 0
    with orm.Session(engine) as session, session.begin():
        job_id = ops.submit("noop", {"order": 2}, connection=session)
        assert job_count(store) == 0  # not before the Session commits
    assert ops.get(job_id)["state"] == "queued"


def test_sqlalchemy_connection_enqueues_in_its_transaction(ops, store, engine):
    with engine.connect() as conn:
        ids = ops.submit_many([{"job_type": "noop"}, {"job_type": "noop"}], connection=conn)
        conn.rollback()
    assert job_count(store) == 0
    with engine.begin() as conn:
        ids = ops.submit_many([{"job_type": "noop"}, {"job_type": "noop"}], connection=conn)
    assert [ops.get(i)["state"] for i in ids] == ["queued", "queued"]


def test_sqlalchemy_on_another_driver_is_refused(ops):
    from jq_cli.errors import InvalidInput

    class Raw:  # what a psycopg2 or asyncpg pool connection would hand out
        pass

    class FakeConnection:
        __module__ = "sqlalchemy.engine.base"

        class connection:
            driver_connection = Raw()

    with pytest.raises(InvalidInput, match="not psycopg 3"):
        ops.submit("noop", {}, connection=FakeConnection())


def test_django_atomic_block_commits_and_rolls_back_the_job(ops, store):
    django = pytest.importorskip("django")
    from urllib.parse import urlsplit

    from django.conf import settings as django_settings

    if not django_settings.configured:
        url = urlsplit(DATABASE_URL)
        django_settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": url.path.lstrip("/"),
                    "HOST": url.hostname or "localhost",
                    "PORT": url.port or 5432,
                    "USER": url.username or "",
                    "PASSWORD": url.password or "",
                }
            },
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.db import connection, transaction

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        ops.submit("noop", {"order": 1}, connection=connection)
        raise Rollback
    assert job_count(store) == 0
    with transaction.atomic():
        job_id = ops.submit("noop", {"order": 2}, connection=connection)
        assert job_count(store) == 0
    assert ops.get(job_id)["state"] == "queued"
    connection.close()
