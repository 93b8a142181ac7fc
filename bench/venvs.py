"""The peers' virtual environments: one per peer, made from its pinned requirements file on
first use under .bench/venvs/ and reused while that file is unchanged."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent / "peers"
CACHE = Path(__file__).resolve().parent.parent / ".bench" / "venvs"


def requirements(peer: str) -> Path:
    return PEERS_DIR / peer / "requirements.txt"


def venv_dir(peer: str) -> Path:
    """Named by the hash of the requirements, so that a changed pin gets a fresh venv."""
    digest = hashlib.sha256(requirements(peer).read_bytes()).hexdigest()[:12]
    return CACHE / f"{peer}-{digest}"


def python(peer: str) -> Path:
    """The interpreter of the peer's venv (jq's own: the project's venv, this interpreter)."""
    if peer == "jq":
        return Path(sys.executable)
    return venv_dir(peer) / "bin" / "python"


def ensure(peer: str, say=print) -> Path:
    """The peer's venv's bin directory, built first if it is missing or its pins changed."""
    if peer == "jq":
        return Path(sys.executable).parent
    target = venv_dir(peer)
    stamp = target / ".complete"
    if stamp.exists():
        return target / "bin"
    for stale in CACHE.glob(f"{peer}-*"):  # older pins and half-built venvs
        shutil.rmtree(stale, ignore_errors=True)
    say(f"building the {peer} venv from {requirements(peer)} (once) …")
    base = getattr(sys, "_base_executable", sys.executable)  # same Python as jq's venv
    subprocess.run([base, "-m", "venv", str(target)], check=True)
    done = subprocess.run(
        [str(target / "bin" / "pip"), "install", "--quiet", "-r", str(requirements(peer))],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install for {peer} failed: {done.stderr.strip()[-1500:]}")
    stamp.touch()
    return target / "bin"
