"""Messages the worker threads post to the app: data arrives this way, never by a thread
touching a widget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from jq_cli.tui.source import Snapshot


@dataclass
class SnapshotReady(Message):
    """A refresh finished (whatever part of it failed is recorded inside)."""

    snapshot: Snapshot


@dataclass
class ActionDone(Message):
    """An operator action ended: `text` says what it did, or the error when `ok` is False."""

    text: str
    ok: bool = True


@dataclass
class ConfirmNeeded(Message):
    """A bulk action counted what it would change and waits for the operator's yes."""

    question: str
    label: str
    run: Callable[[], str]


@dataclass
class JobLoaded(Message):
    """A job with every attempt, for the detail screen."""

    job: dict[str, Any]
