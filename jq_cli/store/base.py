"""The store's foundation: one PostgreSQL connection, driver errors translated once into jq's
error tree (translate()), and the schema (migrations from sql/, applied in order, each in a
transaction unless the file says `-- jq: no-transaction`: the runner is store/migrations.py).

The connection never trusts the network: TCP keepalives and tcp_user_timeout make the kernel give
up on a dead route, statement_timeout makes the server give up on a slow statement, and an optional
client-side deadline (a watchdog) abandons a statement whose answer never comes, as behind a
stalled proxy, where the kernel sees nothing wrong."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from jq_cli.errors import (
    Conflict,
    DatabaseUnavailable,
    Deadlock,
    JqError,
    SchemaNotMigrated,
    Service,
    StoreError,
)

log = logging.getLogger("jq.store")
T = TypeVar("T")
# Runs of one statement that PostgreSQL aborted to break a deadlock, before Deadlock is raised.
DEADLOCK_TRIES = 3
SERVICE = Service.POSTGRESQL
Query = str | sql.SQL | sql.Composed  # what the store's helpers run
MIGRATION_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Timeouts:
    """How long a connection waits before it calls the database unreachable. 0 disables one."""

    statement: float = 60.0  # server side: a statement running longer is cancelled
    tcp_user: float = 15.0  # kernel: sent data unacknowledged this long ends the connection
    keepalive_idle: float = 10.0  # kernel: an idle connection is probed after this long ...
    keepalive_interval: float = 5.0  # ... every this long ...
    keepalive_count: int = 3  # ... and given up after this many unanswered probes
    # Client side: a statement (or transaction block) with no answer after this long is abandoned
    # and its socket shut, whatever the kernel thinks of the route. None: no deadline.
    deadline: float | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.keepalive_idle > 0:
            kwargs.update(
                keepalives=1,
                keepalives_idle=max(1, int(self.keepalive_idle)),
                keepalives_interval=max(1, int(self.keepalive_interval)),
                keepalives_count=max(1, self.keepalive_count),
            )
        if self.tcp_user > 0:
            kwargs["tcp_user_timeout"] = int(self.tcp_user * 1000)
        return kwargs

    def options(self) -> str:
        return f" -c statement_timeout={int(self.statement * 1000)}" if self.statement > 0 else ""


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
    """The database a URL or key=value DSN names, read as libpq reads it (a URL's path would be
    a piece of a password holding an unencoded `/`, and a DSN has no path at all)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "?"
    return str(params.get("dbname") or params.get("user") or "postgres")


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
    if isinstance(exc, psycopg.errors.DeadlockDetected):
        # Not an outage: one statement lost a lock cycle and may run again (with_deadlock_retry).
        return Deadlock(url, _first_line(exc))
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
        timeouts: Timeouts | None = None,
    ) -> None:
        self.url = url
        self.namespace = namespace
        self.application_name = application_name
        self.connect_timeout = connect_timeout
        self.timeouts = timeouts or Timeouts()
        self._conn: psycopg.Connection[DictRow] | None = None
        # The watchdog's view: when the statement in flight began (None: idle), and whether it
        # shut the socket, so that the error says why.
        self._busy_since: float | None = None
        self._abandoned = False
        self._watchdog: threading.Thread | None = None
        self._closing = threading.Event()

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
                options=f"-c search_path={self.namespace}{self.timeouts.options()}",
                **self.timeouts.connect_kwargs(),
            )
        except psycopg.OperationalError as exc:
            detail = _first_line(exc)
            if "unsupported startup parameter" in detail:
                # PgBouncer in transaction mode: jq keeps session settings (search_path, timeouts)
                # that such a pool would hand to other clients, so it is refused plainly.
                raise DatabaseUnavailable(
                    self.url,
                    f"{detail}: PgBouncer in transaction mode is not supported,"
                    " connect jq to PostgreSQL directly (or to PgBouncer in session mode)",
                ) from exc
            # A failed connection carries no SQLSTATE (psycopg has no session to read 3D000 from),
            # so the server's FATAL text is the only sign of a missing database.
            if "does not exist" in detail and "database" in detail:
                raise SchemaNotMigrated(
                    f"{SERVICE} database {_database_name(self.url)!r} does not exist: run `jq db migrate`"
                ) from exc
            raise DatabaseUnavailable(self.url, detail) from exc
        except psycopg.Error as exc:
            raise translate(exc, self.url, self.namespace) from exc
        if self.timeouts.deadline is not None and self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch, name="jq-store-watchdog", daemon=True
            )
            self._watchdog.start()
        return conn

    def _watch(self) -> None:
        """Shut the socket of a statement that has waited past the deadline: the blocked call then
        fails at once (DatabaseUnavailable) instead of waiting for a route that may never return."""
        deadline = self.timeouts.deadline
        assert deadline is not None
        while not self._closing.wait(min(1.0, deadline / 4)):
            since, conn = self._busy_since, self._conn
            if since is None or conn is None or conn.closed:
                continue
            if time.monotonic() - since < deadline:
                continue
            self._abandoned = True
            log.warning(
                "event=database_stalled waited=%.1fs action=connection_abandoned",
                time.monotonic() - since,
            )
            try:
                with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error):
                pass  # closed meanwhile: nothing left to abandon

    @property
    def conn(self) -> psycopg.Connection[DictRow]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def has_session(self) -> bool:
        """True while the connection (and so its session-level advisory locks) is open."""
        return self._conn is not None and not self._conn.closed

    def close(self) -> None:
        """Close the connection (the next call opens another; the watchdog stays for it)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every driver error raised inside becomes a jq error (translate()), its cause kept; a
        broken connection is dropped so that the next call reconnects."""
        outer = self._busy_since is None
        if outer:
            self._busy_since, self._abandoned = time.monotonic(), False
        try:
            yield
        except psycopg.Error as exc:
            error = translate(exc, self.url, self.namespace)
            if self._abandoned:
                error = DatabaseUnavailable(
                    self.url,
                    f"no answer within {self.timeouts.deadline:g}s (the route may be stalled)",
                )
            if isinstance(error, DatabaseUnavailable) and not isinstance(error, Deadlock):
                self.close()
            raise error from exc
        finally:
            if outer:
                self._busy_since = None

    def with_deadlock_retry(self, query: str, run: Callable[[], T]) -> T:
        """run() (one statement, or one transaction), again if PostgreSQL aborted it to break a
        deadlock: nothing of it stood, so the same run is safe. Logged as a deadlock, not as an
        outage. Raises Deadlock after DEADLOCK_TRIES, and whatever run() raises."""
        for attempt in range(1, DEADLOCK_TRIES + 1):
            try:
                return run()
            except Deadlock as exc:
                if attempt == DEADLOCK_TRIES:
                    raise
                log.warning(
                    "event=deadlock_retried query=%s attempt=%d error=%r",
                    query,
                    attempt,
                    exc.message,
                )
        raise AssertionError("unreachable")

    def shutdown(self) -> None:
        """Close for good: the watchdog thread ends too."""
        self._closing.set()
        self.close()

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
        name = _database_name(self.url)
        try:
            # The same server and credentials, database postgres: a URL or a key=value DSN.
            admin_url = psycopg.conninfo.make_conninfo(self.url, dbname="postgres")
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

    def drop_namespace(self) -> None:
        """Drop the namespace's schema and everything in it (tests clean up with this)."""
        with self._errors():
            self.conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.namespace))
            )
