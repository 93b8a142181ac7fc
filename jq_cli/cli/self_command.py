"""How to name this program in a hint that a user will paste: `jq` on PATH may be the JSON
processor (docs/design.md, "Facts that shaped this design"), so a hint names the command that is
running now, as the shell that started it can run it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def self_command(argv0: str | None = None, cwd: str | None = None, path: str | None = None) -> str:
    """The shortest command that runs this very program from `cwd`: its bare name when PATH finds
    this same file under it (the name is `jq` or `jobq`), else its path, relative to `cwd` when
    it lies below it (`.venv/bin/jq` after `make run`), else absolute."""
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    cwd = cwd if cwd is not None else os.getcwd()
    here = os.path.realpath(os.path.join(cwd, argv0))
    name = os.path.basename(argv0)
    if name in ("jq", "jobq"):
        found = shutil.which(name, path=path if path is not None else os.environ.get("PATH"))
        if found is not None and os.path.realpath(os.path.join(cwd, found)) == here:
            return name
    if not os.path.isfile(here):  # run as `python -m jq_cli`: no script of ours to point at
        return "jobq"
    absolute = os.path.normpath(os.path.join(cwd, argv0))
    relative = os.path.relpath(absolute, cwd)
    if not relative.startswith(os.pardir):
        return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
    return shlex.quote(absolute)
