"""The psycopg connection under an application's database handle, so that `Client.submit(...,
connection=handle)` enqueues in the handle's transaction. Neither SQLAlchemy nor Django is imported
here: a handle is recognised by its class's module, and each adapter reaches its driver
connection the documented way.

    with Session(engine) as session, session.begin():       # SQLAlchemy, psycopg driver
        session.add(Order(...))
        client.submit("ship_order", {"order": 42}, connection=session)

    with transaction.atomic():                              # Django, postgresql backend
        Order.objects.create(...)
        client.submit("ship_order", {"order": 42}, connection=django.db.connection)
"""

from __future__ import annotations

from typing import Any

from jq_cli.errors import InvalidInput


def unwrap(handle: Any) -> Any:
    """The psycopg (3) connection of a SQLAlchemy Session, Connection or AsyncConnection, or of a
    Django connection wrapper. Raises InvalidInput for anything else, or for a handle on another
    driver (psycopg2, asyncpg): only psycopg 3 connections can carry jq's statements."""
    module = type(handle).__module__
    if module.startswith("sqlalchemy"):
        from jq_cli.adapters.sqlalchemy import driver_connection

        raw = driver_connection(handle)
    elif module.startswith("django"):
        from jq_cli.adapters.django import driver_connection as django_connection

        raw = django_connection(handle)
    else:
        raise InvalidInput(
            f"connection must be a psycopg 3 connection, a SQLAlchemy Session or Connection, or a "
            f"Django connection, not {type(handle).__name__}"
        )
    import psycopg

    if not isinstance(raw, psycopg.Connection | psycopg.AsyncConnection):
        raise InvalidInput(
            f"the {module.split('.')[0]} connection uses {type(raw).__module__}, not psycopg 3: "
            "use the psycopg driver (postgresql+psycopg:// for SQLAlchemy)"
        )
    return raw
