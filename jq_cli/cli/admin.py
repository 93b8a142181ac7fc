"""Administration: `jq doctor`, `jq db migrate|status`, `jq help exit-codes` and `jq demo`."""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

from typing import Annotated

import typer

from jq_cli.cli.options import JsonOpt, operations
from jq_cli.cli.output import handle_errors, print_json

db_app = typer.Typer(help="The database schema: migrate and status.", no_args_is_help=True)
help_app = typer.Typer(help="Reference pages: exit-codes.", no_args_is_help=True)


@handle_errors
def doctor(json_out: JsonOpt = False) -> None:
    """Check PostgreSQL, RabbitMQ, Redis and the schema version, naming the namespace checked."""
    from jq_cli.ops.health import Check

    client = operations()
    namespace = client.settings.namespace
    # The namespace first: a typo in JQ_NAMESPACE otherwise reads as an unmigrated database.
    checks = [Check("namespace", True, f"{namespace} (JQ_NAMESPACE)"), *client.doctor()]
    for c in checks:
        if c.name == "schema" and not c.ok:
            c.hint += f" (or, if {namespace!r} is a typo, set JQ_NAMESPACE)"
    if json_out:
        print_json([c.__dict__ for c in checks])
    else:
        for c in checks:
            mark = "OK  " if c.ok else "FAIL"
            print(
                f"{mark} {c.name:<10} {c.detail}"
                + (f"  -> {c.hint}" if c.hint and not c.ok else "")
            )
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@db_app.command("migrate")
@handle_errors
def db_migrate(json_out: JsonOpt = False) -> None:
    """Create the database if needed and apply pending migrations (safe to run twice)."""
    created, applied, version = operations().migrate()
    if json_out:
        print_json({"database_created": created, "applied": applied, "version": version})
        return
    if created:
        print("created the database")
    for name in applied:
        print(f"applied {name}")
    print(f"schema at version {version}" + ("" if applied else " (nothing to apply)"))


@db_app.command("status")
@handle_errors
def db_status(json_out: JsonOpt = False) -> None:
    """The schema version applied in this namespace (JQ_NAMESPACE) and the one this jq needs;
    exit 3 when it is behind (the schema not migrated, as in `jq help exit-codes`)."""
    from jq_cli.errors import SchemaNotMigrated

    client = operations()
    namespace = client.settings.namespace
    have, want = client.schema_status()
    if json_out:
        print_json(
            {"namespace": namespace, "version": have, "latest": want, "up_to_date": have >= want}
        )
    else:
        hint = ""
        if have == 0:
            hint = f": run `jq db migrate`, or set JQ_NAMESPACE if {namespace!r} is a typo"
        elif have < want:
            hint = ": run `jq db migrate`"
        print(f"schema version {have} of {want} in namespace {namespace!r}{hint}")
    if have < want:
        raise typer.Exit(SchemaNotMigrated.exit_code)


@help_app.command("exit-codes")
def help_exit_codes(json_out: JsonOpt = False) -> None:
    """The exit codes of every jq command."""
    from jq_cli.errors import EXIT_CODES

    if json_out:
        print_json({str(code): meaning for code, meaning in EXIT_CODES.items()})
        return
    for code, meaning in EXIT_CODES.items():
        print(f"{code}  {meaning}")


@handle_errors
def demo(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 120.0,
) -> None:
    """Start a worker and a scheduler, submit sample jobs of every type and priority, follow them."""
    from jq_cli.cli.demo import run_demo

    raise typer.Exit(run_demo(timeout=timeout))
