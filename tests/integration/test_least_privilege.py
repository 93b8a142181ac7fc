"""The least-privilege setup the README documents works: an application role with row rights
only (no DDL) can submit, run and inspect jobs; only migrations need more."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from jq_cli.client import Client
from psycopg import sql

from conftest import make_settings, wait_for


@pytest.fixture
def app_role(settings):
    role = f"jq_app_{uuid.uuid4().hex[:8]}"
    schema = sql.Identifier(settings.namespace)
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for statement in (
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        ):
            admin.execute(sql.SQL(statement).format(schema=schema, role=sql.Identifier(role)))
    yield role
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_application_role_without_ddl_runs_the_whole_lifecycle(
    settings, app_role, start_worker, start_scheduler
):
    url = settings.database_url.replace("postgresql://", f"postgresql://{app_role}@")
    app = make_settings(settings.namespace, database_url=url)
    with Client(app) as ops:
        job_id = ops.submit("noop", {"n": 1})
        bulk = ops.submit_many([{"job_type": "noop"}, {"job_type": "noop", "delay": 0.2}])
        start_worker(settings=app)
        start_scheduler(settings=app)
        for i in (job_id, *bulk):
            wait_for(lambda i=i: ops.get(i)["state"] == "completed", 20, what=f"job {i} completed")
        assert ops.purge(state="completed") == 3
    # ... and it really has no DDL: it cannot create tables in the schema.
    with (
        psycopg.connect(url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(
            sql.SQL("CREATE TABLE {}.x (id int)").format(sql.Identifier(settings.namespace))
        )
