"""The keys and the filter syntax."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]keys[/b]
  q          quit
  ?          this help
  /          filter the recent jobs (Enter applies, Escape closes)
  r          retry the selected job (dead or cancelled)
  R          retry every dead job of the filter, after a confirmation
  c          cancel the selected job, after a confirmation
  p          purge the filter's finished jobs (state:completed, dead or
             cancelled; dead from the dead letters), after a confirmation
  P          pause or resume the filter's queue (queue:NAME), else the
             selected job's queue, after a confirmation
  Enter      the selected job's detail: payload, result, every attempt
  Tab        next panel (Shift+Tab previous)
  j/k ↓/↑    move
  Escape     back: close the detail or the filter, then clear the filter

[b]filter[/b]
  state:dead  type:send_email  priority:high  queue:reports  id:42
  a bare number searches by job id, a bare word by job type

[dim]Escape, q or ? closes this help[/dim]"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("q", "app.pop_screen", "Back", show=False),
        Binding("question_mark", "app.pop_screen", "Back", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help", classes="box")

    def on_mount(self) -> None:
        self.query_one("#help").border_title = "jq top · help"
