"""What several commands share: their common options and the readers of what users pass in.

Readers of payloads and job files, the confirmation question and the Client factory live
here so that every command module (jobs, dlq, schedules, ...) imports them from one public place.
"""

# No `from __future__ import annotations` here: Typer reads every command's annotations on
# each run, and as strings each one is compiled and evaluated again (about 30 ms of `jq --help`).

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from jq_cli.client import Client
    from jq_cli.model.audit import ActorKind

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON document.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
]
PayloadOpt = Annotated[str | None, typer.Option(help="JSON object, @FILE, or - for stdin.")]


def operations(kind: "ActorKind" = "cli") -> "Client":
    """A new Client, acting as this OS user on this host (the audit log's "who"; `jq top`
    passes kind "tui"); imported here, on first use, so that `jq --help` loads no driver."""
    from jq_cli.client import Client
    from jq_cli.model.audit import Actor

    return Client(actor=Actor.local(kind))


def confirm(question: str, yes: bool) -> None:
    """Ask before deleting; raise Refused unless the answer (or --yes) is yes."""
    from jq_cli.errors import Refused

    # Only --yes skips the question: --json chooses an output format, not consent to delete.
    if yes:
        return
    if not sys.stdin.isatty():  # never hang waiting for an answer no one can give
        raise Refused("refusing to delete without confirmation: pass --yes")
    # The question goes to stderr so that stdout stays one JSON document under --json.
    if not typer.confirm(question, default=False, err=True):
        raise Refused("aborted: nothing was deleted")


def read_payload(value: str | None) -> dict[str, Any]:
    """The one reader of `--payload JSON|@FILE|-` (no value: an empty payload)."""
    from jq_cli.model.jobspec import parse_payload_text

    if value is None:
        return {}
    if value == "-":
        return parse_payload_text(sys.stdin.read(), "payload from stdin")
    if value.startswith("@"):
        from jq_cli.userfiles import read_user_text

        path = value[1:]
        return parse_payload_text(read_user_text(path, "payload file"), f"payload file {path}")
    from jq_cli.errors import InvalidInput

    try:
        return parse_payload_text(value)
    except InvalidInput as exc:
        import os.path

        # `--payload email.json` where `@email.json` was meant: the file is right there.
        if os.path.isfile(value):
            raise InvalidInput(
                f"{exc.message} (did you mean --payload @{value}? a file is read with @)"
            ) from None
        raise


def read_jobs_file(value: str) -> list[tuple[int, dict[str, Any]]]:
    """Parse a JSONL file of job objects; a bad line rejects the whole file, naming the line.
    Returns (line number, job) pairs: blank lines are skipped, so the numbers are kept beside
    the jobs rather than recounted (or stored in the job, where they would hide a user's field)."""
    import json

    from jq_cli.errors import InvalidInput
    from jq_cli.model.jobspec import decode_json

    if value == "-":
        lines = sys.stdin.read().splitlines()
    else:
        from jq_cli.userfiles import read_user_text

        lines = read_user_text(value, "jobs file").splitlines()
    jobs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = decode_json(line, f"line {number}")
        except ValueError as exc:  # not JSON, or NaN/Infinity (jsonb cannot store them)
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InvalidInput(f"line {number}: not valid JSON: {reason}") from None
        if not isinstance(job, dict):
            raise InvalidInput(f"line {number}: a job must be a JSON object")
        jobs.append((number, job))
    if not jobs:
        raise InvalidInput("the jobs file holds no jobs")
    return jobs
