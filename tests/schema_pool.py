"""Migrated schemas lent to tests: one test process migrates a schema once and lends it to each test
in turn under that test's own namespace, emptied between tests (every name carries the namespace:
docs/design.md, Defaults that make a fresh machine work).

Migrating costs a second on a busy machine (17 files, some of them CREATE INDEX CONCURRENTLY, which
waits for every older transaction in the database, other test processes' included); renaming a
migrated schema, and emptying it after the test, cost a tenth of that. A test still sees a schema that
only it uses, under a name that only it uses, so its RabbitMQ queues and Redis keys (named by the
same namespace) are its own too. A schema whose structure a test changed is dropped, not lent again.
A connection that a test left open (a daemon thread that outlived it) keeps the old name on its
search_path: after the rename it finds no table, its prepared plans included (PostgreSQL re-plans
them when the search path's schemas change), so it cannot touch the next test's rows.
"""

from __future__ import annotations

import os

import psycopg
from jq_cli.store import Store
from psycopg import sql

# Everything a test could change in a schema's structure or rights, without the schema's name (it
# changes with every loan). Data is not here: it is emptied. Items sort by their named form, the
# same under any name since every item begins with a kind and a name of the schema's own.
FINGERPRINT = """
SELECT md5(coalesce(string_agg(replace(item, %(prefix)s, ''), ';' ORDER BY replace(item, %(prefix)s, '')), '')) AS fp FROM (
    SELECT 'rel:' || c.relname || ':' || c.relkind::text || ':' || coalesce(c.relacl::text, '')
           || ':' || coalesce(c.reloptions::text, '') || ':' || c.relrowsecurity::text AS item
    FROM pg_class c WHERE c.relnamespace = %(schema)s::regnamespace
    UNION ALL
    SELECT 'att:' || c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
           || ':' || a.attnotnull::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = %(schema)s::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'idx:' || c.relname || ':' || i.indisvalid::text || ':' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = %(schema)s::regnamespace
    UNION ALL
    SELECT 'con:' || conname || ':' || convalidated::text || ':' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = %(schema)s::regnamespace
    UNION ALL
    SELECT 'fn:' || p.proname || ':' || md5(p.prosrc) FROM pg_proc p
    WHERE p.pronamespace = %(schema)s::regnamespace
    UNION ALL
    SELECT 'trg:' || t.tgname || ':' || t.tgenabled::text FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = %(schema)s::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT 'type:' || typname FROM pg_type
    WHERE typnamespace = %(schema)s::regnamespace AND typtype <> 'c' AND typname NOT LIKE '\\_%%'
    UNION ALL
    SELECT 'acl:' || coalesce(nspacl::text, '') FROM pg_namespace WHERE oid = %(schema)s::regnamespace
) AS items
"""

TABLES = """
SELECT c.relname AS name FROM pg_class c
WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind IN ('r', 'p')
    AND c.relname <> 'schema_migrations'
"""

SEQUENCES_RESTART = """
SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
WHERE c.relnamespace = %(schema)s::regnamespace
"""

# The functions pinned to their schema by name (sql/041_trigger_search_path.sql): a renamed schema
# must pin them to its new name, or its triggers would look for the tables under the old one.
PINNED = """
SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
WHERE p.pronamespace = %(schema)s::regnamespace
    AND EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search_path=%%')
"""

LOCK_TIMEOUT = "5s"  # a test that left a transaction open: give up and drop the schema instead


class SchemaPool:
    """At most one idle migrated schema per test process, lent out by renaming it."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.idle: str | None = None  # the parked schema's name, emptied and ready
        self.fingerprint: str | None = None  # of a freshly migrated schema
        self.parking = f"jq_pool_{os.getpid()}"

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)

    def lend(self, namespace: str) -> None:
        """Give `namespace` a migrated, empty schema of its own."""
        if self.idle is not None:
            try:
                with self._connect() as conn, conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    rename(conn, self.idle, namespace)
                self.idle = None
                return
            except psycopg.Error:
                self.idle = None  # lost (dropped by someone): migrate a new one below
        store = Store(self.database_url, namespace)
        try:
            store.migrate()
        finally:
            store.close()
        if self.fingerprint is None:
            with self._connect() as conn:
                self.fingerprint = fingerprint(conn, namespace)

    def give_back(self, namespace: str) -> None:
        """Empty the test's schema and park it for the next test; drop it instead if the test
        changed its structure or its rights, or left a lock that emptying would wait for."""
        try:
            with self._connect() as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_namespace WHERE nspname = %s", (namespace,)
                ).fetchone()
                if not exists:
                    return
                if fingerprint(conn, namespace) == self.fingerprint:
                    with conn.transaction():
                        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                        empty(conn, namespace)
                        rename(conn, namespace, self.parking)
                    self.idle = self.parking
                    return
        except psycopg.Error:
            pass
        store = Store(self.database_url, namespace)
        try:
            store.drop_namespace()
        finally:
            store.close()

    def close(self) -> None:
        if self.idle is not None:
            store = Store(self.database_url, self.idle)
            try:
                store.drop_namespace()
            finally:
                store.close()
            self.idle = None


def fingerprint(conn: psycopg.Connection, schema: str) -> str:
    """The schema's structure, rights and applied migrations, as one digest."""
    # Definitions name the schema where it is not on the search_path: the name is left out.
    row = conn.execute(FINGERPRINT, {"schema": schema, "prefix": f"{schema}."}).fetchone()
    migrations = conn.execute(
        sql.SQL("SELECT string_agg(version::text, ',' ORDER BY version) FROM {}").format(
            sql.Identifier(schema, "schema_migrations")
        )
    ).fetchone()
    return f"{row[0] if row else ''}:{migrations[0] if migrations else ''}"


def empty(conn: psycopg.Connection, schema: str) -> None:
    """Every table but schema_migrations emptied, and the sequences restarted, as when migrated.

    DELETE, not TRUNCATE: a TRUNCATE gives each table and index a new file, some 0.2 s for jq's
    tables on a busy machine, while deleting a test's few rows costs milliseconds. The triggers
    (job counts, foreign keys) are off meanwhile, as every table is emptied anyway; that takes a
    superuser, as the test database's owner is here, and a lesser role truncates instead."""
    tables = [sql.Identifier(schema, r[0]) for r in conn.execute(TABLES, {"schema": schema})]
    superuser = conn.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if superuser and superuser[0]:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql.SQL("; ").join(sql.SQL("DELETE FROM {}").format(t) for t in tables))
    elif tables:
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(tables)))
    conn.execute(SEQUENCES_RESTART, {"schema": schema})


def rename(conn: psycopg.Connection, old: str, new: str) -> None:
    conn.execute(
        sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))
    )
    for (fn,) in conn.execute(PINNED, {"schema": new}).fetchall():
        conn.execute(
            sql.SQL("ALTER FUNCTION {} SET search_path = {}").format(
                sql.SQL(fn), sql.Identifier(new)
            )
        )
