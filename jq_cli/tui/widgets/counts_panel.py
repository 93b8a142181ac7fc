"""Jobs by state, and queued jobs by priority and by queue."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from jq_cli.model.states import Priority
from jq_cli.tui.plain import STATES

STATE_STYLES = {
    "waiting": "blue",
    "queued": "cyan",
    "scheduled": "blue",
    "running": "yellow",
    "retrying": "magenta",
    "completed": "green",
    "dead": "bold red",
    "cancelled": "dim",
}


class CountsPanel(Widget):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "jobs"
        self.stats: dict | None = None

    def show(self, stats: dict | None) -> None:
        if stats is not None:  # keep the last counts while Postgres is away
            self.stats = stats
            self.refresh()

    def render(self) -> Text:
        if self.stats is None:
            return Text("loading…", "dim")
        by_state = self.stats["by_state"]
        number = max(len(str(n)) for n in by_state.values())
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, state in enumerate(STATES):
            text.append(f"{state:<9} ", STATE_STYLES[state])
            text.append(f"{by_state.get(state, 0):>{number}}")
            text.append("\n" if i % 2 else "   ")
        if not text.plain.endswith("\n"):  # an odd number of states ends mid-row
            text.append("\n")
        prio = self.stats["queued_by_priority"]
        text.append("queued   ", "bold")
        text.append("  ".join(f"{p.value} {prio.get(p.value, 0)}" for p in Priority))
        queues = sorted(self.stats["queues"].items(), key=lambda kv: (-kv[1]["queued"], kv[0]))
        text.append("\nqueues   ", "bold")
        if not queues:
            text.append("-")
        for i, (q, v) in enumerate(queues):
            text.append(("  " if i else "") + f"{q} {v['queued']}")
            if v.get("paused"):
                text.append(" paused", "bold red")
        return text
