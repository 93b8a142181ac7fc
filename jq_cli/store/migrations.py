"""The migration runner: sql/ files applied in order, each in a transaction whose DDL waits only a
moment for its locks, or, for a file marked `-- jq: no-transaction`, statement by statement (CREATE
INDEX CONCURRENTLY), so an upgrade never locks out job writes for longer than a moment."""

from __future__ import annotations

import re
import time

import psycopg
from psycopg import sql

from jq_cli.store.base import StoreBase, available_migrations, log

# A migration whose file says this runs statement by statement outside a transaction, as CREATE
# INDEX CONCURRENTLY must; its statements end with `;` at the end of a line (no function bodies).
NO_TRANSACTION = re.compile(r"^--\s*jq:\s*no-transaction\s*$", re.MULTILINE)
STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)
MIGRATION_LOCK_TIMEOUT = "500ms"  # a DDL lock waited for longer is given up and tried again
MIGRATION_LOCK_TRIES = 60


def split_statements(text: str) -> list[str]:
    """The statements of a no-transaction migration: each ends with `;` at the end of a line."""
    out = []
    for chunk in STATEMENT_END.split(text):
        body = "\n".join(
            line
            for line in chunk.splitlines()
            if line.strip() and not line.strip().startswith("--")
        )
        if body.strip():
            out.append(body.strip())
    return out


class MigrationQueries(StoreBase):
    def migrate(self, up_to: int | None = None) -> list[str]:
        """Apply pending migrations in order. Returns their names. A migration lock makes two
        concurrent `jq db migrate` runs safe.

        A file is one transaction, whose DDL locks wait at most MIGRATION_LOCK_TIMEOUT (then the
        file is tried again), so a queue of writers never forms behind an upgrade. A file marked
        `-- jq: no-transaction` runs statement by statement (CREATE INDEX CONCURRENTLY), under a
        session lock; an invalid index a failed run of it left behind is dropped and built again.
        `up_to` stops after that version (tests of an upgrade)."""
        applied: list[str] = []
        schema = sql.Identifier(self.namespace)
        lock_key = f"{self.namespace}:migrate"
        with self._errors():
            conn = self.conn
            conn.execute("SET statement_timeout = 0")  # an index build on a big table takes long
            self._migration_lock(lock_key)
            try:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(schema)
                )
                for version, name, path in available_migrations():
                    if up_to is not None and version > up_to:
                        break
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                    ).fetchone()
                    if done:
                        continue
                    text = path.read_text(encoding="utf-8")
                    if NO_TRANSACTION.search(text):
                        self._apply_outside_transaction(text)
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (version, name),
                        )
                    else:
                        self._apply_in_transaction(text, version, name)
                    applied.append(name)
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock_key,))
                    conn.execute("RESET statement_timeout")
        return applied

    def _migration_lock(self, key: str) -> None:
        # Polled rather than waited for: a session waiting inside pg_advisory_lock holds a snapshot,
        # and the other session's CREATE INDEX CONCURRENTLY would wait for that snapshot in turn.
        while not self.conn.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (key,)
        ).fetchone()["ok"]:  # type: ignore[index]
            time.sleep(0.2)

    def _apply_in_transaction(self, text: str, version: int, name: str) -> None:
        conn = self.conn
        for attempt in range(MIGRATION_LOCK_TRIES):
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'")
                    conn.execute(text)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == MIGRATION_LOCK_TRIES - 1:
                    raise
                log.warning("event=migration_lock_busy migration=%s action=retry", name)
                time.sleep(min(0.1 * 2**attempt, 2.0))

    def _apply_outside_transaction(self, text: str) -> None:
        conn = self.conn
        invalid = conn.execute(
            # query: index_invalid. Left by a CREATE INDEX CONCURRENTLY that failed or was cut off.
            """
            SELECT c.relname AS name FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND NOT i.indisvalid
            """,
            (self.namespace,),
        ).fetchall()
        for row in invalid:
            if re.search(rf"\b{re.escape(row['name'])}\b", text):
                conn.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                        sql.Identifier(row["name"])
                    )
                )
        for statement in split_statements(text):
            conn.execute(statement)
