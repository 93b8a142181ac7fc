"""SQLAlchemy (2.x): the psycopg connection under a Session or Connection, in its transaction."""

from __future__ import annotations

from typing import Any


def driver_connection(handle: Any) -> Any:
    """A Session gives the Connection of its current transaction (session.connection() begins one
    if none is open, as the Session's next query would); a Connection gives its pool's DBAPI
    connection, whose driver_connection is the psycopg one. An AsyncConnection's sync_connection
    is the same thing, awaited by its owner."""
    connection = handle.connection() if hasattr(handle, "get_bind") else handle
    connection = getattr(connection, "sync_connection", None) or connection
    return connection.connection.driver_connection
