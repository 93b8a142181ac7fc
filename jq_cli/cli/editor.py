"""The user's text editor for `jq dlq edit`: found and checked before anything starts, so a
missing or misspelt $VISUAL/$EDITOR is one `jq: error:` line, never a traceback."""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from jq_cli.errors import InvalidInput, JqError

# When neither variable is set, these are tried in this order (as Click itself does).
FALLBACK_EDITORS = ("sensible-editor", "vim", "nano", "vi")


def resolve_editor() -> list[str]:
    """The editor's command line: $VISUAL, else $EDITOR, else the first of FALLBACK_EDITORS on
    PATH, which only a terminal can drive. Raises InvalidInput (exit 2) naming what is wrong."""
    for variable in ("VISUAL", "EDITOR"):
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise InvalidInput(f"${variable} {value!r} cannot be parsed: {exc}") from None
        if shutil.which(words[0]) is None:
            raise InvalidInput(
                f"${variable} is {value!r}, but {words[0]!r} is not an executable on PATH"
            )
        return words
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInput(
            "no editor: set $VISUAL or $EDITOR (with no terminal none can be chosen for you)"
        )
    for name in FALLBACK_EDITORS:
        if shutil.which(name) is not None:
            return [name]
    raise InvalidInput("no editor: set $VISUAL or $EDITOR (none of vim, nano, vi is on PATH)")


def edit_text(text: str, editor: list[str], suffix: str = ".json") -> str | None:
    """`text` as the user left it in `editor`, or None when the file was not saved (its
    modification time unchanged). Raises JqError when the editor fails."""
    import subprocess
    import tempfile

    fd, path = tempfile.mkstemp(suffix=suffix, prefix="jq-edit-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # Back-date the file, so that a save within the same second still changes its time.
        before = os.stat(path).st_mtime - 2
        os.utime(path, (before, before))
        try:
            code = subprocess.call([*editor, path])
        except OSError as exc:
            raise JqError(f"the editor {shlex.join(editor)!r} could not start: {exc}") from None
        if code != 0:
            raise JqError(f"the editor {shlex.join(editor)!r} exited {code}: nothing was changed")
        if os.stat(path).st_mtime == before:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()
    finally:
        os.unlink(path)
