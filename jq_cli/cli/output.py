"""The one place the CLI turns results into output and jq errors into a line and an exit code."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from jq_cli.model.words import plural

if TYPE_CHECKING:
    from rich.console import Console

    from jq_cli.client import ActionReport

F = TypeVar("F", bound=Callable[..., Any])


def json_default(value: Any) -> Any:
    """How print_json (and the jsonl rows) write what json cannot: datetimes, enums, the rest as str."""
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, default=json_default, ensure_ascii=False) + "\n")


def print_report(report: ActionReport, json_out: bool) -> None:
    """What a multi-id action did: one line per job changed, one `jq: error:` line per job
    refused; exit with the gravest refusal's code if any."""
    if json_out:
        print_json(report.as_dict())
    else:
        for job_id, state in report.changed.items():
            print(f"{job_id} {state}")
        for err in report.refused.values():
            sys.stderr.write(f"jq: error: {err.message}\n")
    if report.refused:
        raise typer.Exit(max(e.exit_code for e in report.refused.values()))


def progress(verb: str) -> Callable[[int], None] | None:
    """A bulk action's progress line on stderr, rewritten after each batch; None (no output) when
    stderr is not a terminal, so scripts and --json see only the result."""
    if not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        # Erase to the end of the line afterwards too (the result printed next starts clean).
        sys.stderr.write(f"\r{verb} {plural(done, 'job')} so far ...\x1b[K")
        sys.stderr.flush()

    return show


def end_progress() -> None:
    """Clear the progress line, if one was shown, before the result is printed."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()


def fail(message: str, code: int = 1) -> None:
    from jq_cli.redaction import redact_known

    # The one error line of every command: no password of the settings' URLs, whatever wrote it.
    sys.stderr.write(f"jq: error: {redact_known(message)}\n")
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Render any JqError as one stderr line with its exit code (1 failed, 2 invalid input,
    3 a service unavailable or the schema not migrated)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from jq_cli.errors import JqError

        try:
            return fn(*args, **kwargs)
        except JqError as exc:
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            sys.stderr.write("jq: interrupted\n")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def console() -> Console:
    from rich.console import Console

    return Console()


def age(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (datetime.now(UTC) - when).total_seconds()
    return human_seconds(seconds) + " ago" if seconds >= 0 else "in " + human_seconds(-seconds)


def human_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{(seconds % 86400) // 3600:02.0f}h"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return human_seconds((end - start).total_seconds())


STATE_STYLE = {
    "completed": "green",
    "dead": "red",
    "cancelled": "magenta",
    "running": "cyan",
    "retrying": "yellow",
    "queued": "blue",
    "scheduled": "white",
    "waiting": "white",
}


def state_text(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def print_fields(out: Console, fields: Iterable[tuple[str, Any]]) -> None:
    """Label-value lines (`jq show`, `jq schedule show`). Values are plain text unless already a
    rich Text: a payload or an error holding "[/b]" must print as written, not as Rich markup
    (which used to crash `jq show`)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in fields:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    out.print(grid, highlight=False)
