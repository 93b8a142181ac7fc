"""The command a hint names (`jq demo`'s closing line): it runs as printed in the shell that
started jq, where `jq` on PATH may be the JSON processor."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from jq_cli.cli.self_command import self_command


def script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho ours\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_make_run_names_the_virtualenv_path_when_jq_on_path_is_another(tmp_path):
    ours = script(tmp_path / "repo" / ".venv" / "bin" / "jq")
    other = script(tmp_path / "usr" / "bin" / "jq")
    other.write_text("#!/bin/sh\necho json-processor\n")
    cwd = str(tmp_path / "repo")
    command = self_command(".venv/bin/jq", cwd, str(other.parent))
    assert command == ".venv/bin/jq"
    ran = subprocess.run(
        f"{command}", shell=True, cwd=cwd, capture_output=True, text=True,
        env={**os.environ, "PATH": str(other.parent)},
    )  # fmt: skip
    assert ran.stdout == "ours\n"
    assert self_command(str(ours), str(tmp_path), str(other.parent)) == "repo/.venv/bin/jq"
    elsewhere = str(tmp_path / "elsewhere")
    assert self_command(str(ours), elsewhere, str(other.parent)) == str(ours)


def test_the_bare_name_when_path_finds_this_same_program(tmp_path):
    ours = script(tmp_path / "venv" / "bin" / "jq")
    assert self_command(str(ours), "/", f"{ours.parent}:/usr/bin") == "jq"
    jobq = script(tmp_path / "venv" / "bin" / "jobq")
    assert self_command(str(jobq), "/", str(jobq.parent)) == "jobq"
