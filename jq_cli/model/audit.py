"""Who did what: the Actor a front end passes to the operations layer, and the audit actions.

The store records an Actor as it is given; it never looks at the environment to guess one. The
CLI and `jq top` build theirs from the OS user and host (Actor.local), `jq serve` from the name
of the API key that signed the request (Actor.http)."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["cli", "tui", "http", "api"]

# Every action the audit log records, by name (`jq audit --action NAME`).
ACTIONS = (
    "job.retry",
    "job.cancel",
    "job.purge",
    "job.edit",  # a dead job retried with a new payload (jq retry --payload, jq dlq edit)
    "job.replay",
    "schedule.add",
    "schedule.edit",
    "schedule.enable",
    "schedule.disable",
    "schedule.remove",
    "schedule.run_now",
    "schedule.apply",
    "queue.pause",
    "queue.resume",
    "queue.limit",
)


@dataclass(frozen=True)
class Actor:
    """Who asks for an operator action: its kind (cli, tui, http, api), a name and a host."""

    kind: ActorKind
    name: str
    host: str | None = None

    @classmethod
    def local(cls, kind: ActorKind = "api") -> Actor:
        """The OS user and host of this process (the CLI, `jq top`, a Python program)."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
            user = "unknown"
        return cls(kind, user, socket.gethostname())

    @classmethod
    def http(cls, key_name: str | None, client: str | None = None) -> Actor:
        """An HTTP request: the name of the API key it carried (`anonymous` on a keyless,
        loopback-only server), and the client's address as its host."""
        return cls("http", key_name or "anonymous", client)

    def __str__(self) -> str:
        return f"{self.name}@{self.host}" if self.host else self.name
