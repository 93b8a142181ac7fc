"""Django (4.2+ with psycopg 3): the psycopg connection under django.db.connection."""

from __future__ import annotations

from typing import Any


def driver_connection(handle: Any) -> Any:
    """Django's wrapper connects lazily: ensure_connection() opens it, then .connection is the
    psycopg connection, in the atomic block's transaction when inside one."""
    handle.ensure_connection()
    return handle.connection
