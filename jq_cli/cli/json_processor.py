"""Pass a call meant for the JSON processor to the real `jq`: `jobq list -o jsonl | jq -c '.id'`
must work in a shell where this package's `jq` comes first on PATH (an activated virtualenv).
(The worker's word for giving a job to another worker, docs/design.md, Daemons, is not used
here: this module only passes a command line on.)

Only when invoked as `jq` (never as `jobq`), only when the arguments are plainly a call of the
JSON processor (its options, or a first argument that is a filter and not one of our commands),
and only to another program on PATH: never to ourselves, judged by resolved path and by the
script's text (a second jq_cli install is ourselves too), and never twice (an environment
mark). This runs before Typer is imported, so it costs `jq submit` nothing it can measure.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

# Options of the JSON processor (jq 1.6/1.7) that none of our commands takes.
JSON_OPTIONS = frozenset(
    {
        "-c", "-r", "-j", "-a", "-s", "-n", "-e", "-S", "-C", "-M", "-R", "-f", "-L",
        "--compact-output", "--raw-output", "--raw-output0", "--join-output", "--ascii-output",
        "--slurp", "--null-input", "--exit-status", "--sort-keys", "--color-output",
        "--monochrome-output", "--raw-input", "--from-file", "--tab", "--indent", "--stream",
        "--stream-errors", "--seq", "--arg", "--argjson", "--slurpfile", "--rawfile", "--args",
        "--jsonargs", "--unbuffered",
    }
)  # fmt: skip
# A filter: a path or literal (`.`, `.[0]`, `.foo`, `[..]`, `{a}`, `"x"`, `$ENV`), a pipe, or a
# call of a builtin (`select(.a > 1)`, `map(.id)`).
_FILTER = re.compile(r"""^\s*[.\[{("$@\d]|\||^\s*[a-z_][a-z0-9_]*\s*\(""")
# Builtins often used alone as the whole filter; none is one of our commands.
_BARE_BUILTINS = frozenset(
    [
        "keys",
        "length",
        "add",
        "empty",
        "not",
        "sort",
        "unique",
        "reverse",
        "first",
        "last",
        "tostring",
        "tonumber",
        "type",
        "flatten",
        "min",
        "max",
        "to_entries",
        "from_entries",
        "paths",
        "env",
        "input",
        "inputs",
        "tojson",
        "fromjson",
        "ascii_downcase",
        "ascii_upcase",
        "floor",
        "sqrt",
        "any",
        "all",
        "values",
        "nulls",
    ]
)
_PASSED = "JQ_CLI_PASSED_TO_JSON_PROCESSOR"


def is_json_processor_call(args: Sequence[str], our_commands: Sequence[str]) -> bool:
    """True when `args` are plainly for the JSON processor rather than for us."""
    if not args:
        return False
    first = args[0]
    if first in our_commands or first in ("--help", "--version", "-h"):
        return False
    if first.startswith("--install-completion") or first.startswith("--show-completion"):
        return False
    if any(a in JSON_OPTIONS or a.split("=", 1)[0] in JSON_OPTIONS for a in args):
        return True
    # Single-letter options bundled as jq allows (`-rc`).
    if any(re.fullmatch(r"-[crjasneSCMR]{2,}", a) for a in args):
        return True
    return first in _BARE_BUILTINS or bool(_FILTER.search(first))


def other_jq(ourselves: str) -> str | None:
    """The first `jq` on PATH that is not this program (nor another install of it)."""
    mine = os.path.realpath(ourselves)
    for folder in os.get_exec_path():
        candidate = os.path.join(folder, "jq")
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        if os.path.realpath(candidate) == mine:
            continue
        try:
            with open(candidate, "rb") as f:
                head = f.read(4096)
        except OSError:
            continue
        if b"jq_cli" in head:  # a console script of this package, in another virtualenv
            continue
        return candidate
    return None


def pass_to_json_processor_if_asked(argv: Sequence[str], our_commands: Sequence[str]) -> None:
    """Exec the JSON processor with the same arguments (stdin is inherited) when the call is
    plainly for it; say so in one line when it is and none is on PATH. Returns otherwise."""
    if os.path.basename(argv[0]) != "jq" or os.environ.get(_PASSED):
        return
    args = list(argv[1:])
    if not is_json_processor_call(args, our_commands):
        return
    target = other_jq(argv[0])
    if target is None:
        sys.stderr.write(
            "jq: error: this is jq the job queue (also `jobq`); these arguments are for the "
            "JSON processor jq, which is not on PATH\n"
        )
        raise SystemExit(2)
    os.environ[_PASSED] = "1"
    os.execv(target, [target, *args])
