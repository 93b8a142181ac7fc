"""Submitted, completed and failed per second, each with a sparkline of the last minutes."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from jq_cli.tui.plain import rate_now, rate_text, sparkline

EVENT_STYLES = {"submitted": "cyan", "completed": "green", "failed": "red"}


class RatesPanel(Widget):
    def __init__(self, seconds: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = f"rates · last {seconds // 60}m"
        self.rates: dict | None = None
        self.error: str | None = None

    def show(self, rates: dict | None, error: str | None) -> None:
        self.rates, self.error = rates, error
        self.refresh()

    def render(self) -> Text:
        if self.error:
            return Text.assemble(("telemetry unavailable\n", "bold yellow"), (self.error, "dim"))
        if self.rates is None:
            return Text("loading…", "dim")
        width = max(0, self.content_size.width - 20)
        text = Text(no_wrap=True, overflow="crop")
        for event, style in EVENT_STYLES.items():
            series = self.rates[event]
            text.append(f"{event:<9} ", style).append(rate_text(rate_now(series)) + " ")
            text.append(sparkline(series, width) + "\n", style)
        return text
