"""The store's foundation: one PostgreSQL connection, driver errors translated once into jq's
error tree (translate()), and the schema (migrations from sql/, applied in order, each in a
transaction)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from jq_cli.errors import (
    Conflict,
    DatabaseUnavailable,
    JqError,
    SchemaNotMigrated,
    Service,
    StoreError,
)

SERVICE = Service.POSTGRESQL
Query = str | sql.SQL | sql.Composed  # what the store's helpers run
MIGRATION_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations_dir() -> Path:
    """sql/ inside the installed wheel, or beside the package in a source checkout."""
    packaged = resources.files("jq_cli") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent.parent / "sql"


def available_migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(migrations_dir().glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path))
    return found


def latest_version() -> int:
    migrations = available_migrations()
    return migrations[-1][0] if migrations else 0


def _database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: psycopg.Error, url: str, namespace: str) -> JqError:
    """The jq error for a driver error: the one place the store decides what PostgreSQL's
    errors mean. Callers raise it `from exc`, so the driver's error stays the cause."""
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return SchemaNotMigrated(
            f"the jq schema {namespace!r} is missing in {_database_name(url)!r}: run `jq db migrate`"
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Outages, but also a statement timeout or a deadlock (both OperationalError): the
        # connection may be unusable, and the caller's answer is the same, try again later.
        return DatabaseUnavailable(url, _first_line(exc))
    if isinstance(exc, psycopg.errors.UniqueViolation):
        constraint = exc.diag.constraint_name or "a unique key"
        return Conflict(f"{SERVICE} refused a duplicate ({constraint}): {_first_line(exc)}")
    sqlstate = f" {exc.sqlstate}" if exc.sqlstate else ""
    return StoreError(
        f"{SERVICE} refused a statement ({type(exc).__name__}{sqlstate}): {_first_line(exc)}"
    )


class StoreBase:
    """One PostgreSQL connection (autocommit; explicit transactions where several statements
    must commit together). Not thread-safe: each thread that needs SQL owns a Store."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        application_name: str = "jq",
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[DictRow] | None = None

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[DictRow]:
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self.connect_timeout)),
                application_name=self.application_name,
                # Every table lives in the namespace's schema, so SQL stays unqualified and test
                # runs in their own namespaces never see each other's rows.
                options=f"-c search_path={self.namespace}",
            )
        except psycopg.OperationalError as exc:
            detail = _first_line(exc)
            # A failed connection carries no SQLSTATE (psycopg has no session to read 3D000 from),
            # so the server's FATAL text is the only sign of a missing database.
            if "does not exist" in detail and "database" in detail:
                raise SchemaNotMigrated(
                    f"{SERVICE} database {_database_name(self.url)!r} does not exist: run `jq db migrate`"
                ) from exc
            raise DatabaseUnavailable(self.url, detail) from exc
        except psycopg.Error as exc:
            raise translate(exc, self.url, self.namespace) from exc
        return conn

    @property
    def conn(self) -> psycopg.Connection[DictRow]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def has_session(self) -> bool:
        """True while the connection (and so its session-level advisory locks) is open."""
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every driver error raised inside becomes a jq error (translate()), its cause kept; a
        broken connection is dropped so that the next call reconnects."""
        try:
            yield
        except psycopg.Error as exc:
            error = translate(exc, self.url, self.namespace)
            if isinstance(error, DatabaseUnavailable):
                self.close()
            raise error from exc

    # A row is the driver's dict; the query modules cast it to their TypedDict (store.rows).
    def _all(self, query: Query, params: Any = None) -> list[dict[str, Any]]:
        with self._errors():
            return self.conn.execute(query, params).fetchall()

    def _one(self, query: Query, params: Any = None) -> dict[str, Any] | None:
        with self._errors():
            return self.conn.execute(query, params).fetchone()

    def _run(self, query: Query, params: Any = None) -> int:
        with self._errors():
            return self.conn.execute(query, params).rowcount

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The applied migration version, 0 for none. Raises ServiceUnavailable."""
        try:
            row = self._one(
                "SELECT coalesce(max(version), 0) AS v FROM schema_migrations"  # query: schema_version
            )
        except SchemaNotMigrated:
            return 0
        return int(row["v"]) if row else 0

    def require_schema(self) -> None:
        """Raise SchemaNotMigrated unless every migration this code knows has been applied."""
        have, want = self.schema_version(), latest_version()
        if have < want:
            raise SchemaNotMigrated(
                f"the database schema is at version {have}, this jq needs {want}: run `jq db migrate`"
            )

    def ensure_database(self) -> bool:
        """Create the database named in the URL when it is missing (trust-auth fresh machines).
        Returns True when it was created."""
        parts = urlsplit(self.url)
        name = _database_name(self.url)
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        try:
            with psycopg.connect(
                admin_url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            ) as admin:
                exists = admin.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if exists:
                    return False
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return True
        except psycopg.errors.DuplicateDatabase:
            return False
        except psycopg.Error as exc:
            raise translate(exc, self.url, self.namespace) from exc

    def migrate(self) -> list[str]:
        """Apply pending migrations in order, each in its own transaction. Returns their names.
        A migration lock makes two concurrent `jq db migrate` runs safe."""
        applied: list[str] = []
        schema = sql.Identifier(self.namespace)
        with self._errors():
            conn = self.conn
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.namespace}:migrate",)
                )
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    ).format(schema)
                )
            for version, name, path in available_migrations():
                with conn.transaction():
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.namespace}:migrate",)
                    )
                    done = conn.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                    ).fetchone()
                    if done:
                        continue
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                    applied.append(name)
        return applied

    def drop_namespace(self) -> None:
        """Drop the namespace's schema and everything in it (tests clean up with this)."""
        with self._errors():
            self.conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.namespace))
            )
