"""The top line: namespace, the health of each service, when the data was read."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from jq_cli.tui.source import Snapshot


class StatusBar(Widget):
    def __init__(self, namespace: str, interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace
        self.interval = interval
        self.snapshot: Snapshot | None = None
        self.last_good: Snapshot | None = None

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        if not snapshot.database_error:
            self.last_good = snapshot
        self.set_class(bool(snapshot.database_error), "-down")
        self.refresh()

    def render(self) -> Text:
        text = Text.assemble(("jq top", "bold"), f"  ns {self.namespace}  ")
        snap = self.snapshot
        if snap is None:
            return text.append("connecting…")
        if snap.database_error:
            since = (
                f" · showing data from {self.last_good.taken_at:%H:%M:%S}" if self.last_good else ""
            )
            return text.append(
                f"PostgreSQL unavailable, reconnecting{since} · {snap.database_error}", "bold"
            )
        stats = snap.stats or {}
        for name, error in (
            ("postgres", None),
            ("rabbitmq", stats.get("broker_error")),
            ("redis", snap.telemetry_error),
        ):
            text.append("● ", "red" if error else "green").append(f"{name}  ")
        text.append(f"every {self.interval:g}s · {snap.taken_at:%H:%M:%S}", "dim")
        return text
