"""A DataTable whose rows are replaced every refresh without flicker or losing the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

Cell = str | Text


class RowTable(DataTable):
    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("j", "cursor_down", "Move", key_display="j/k/↑↓"),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, columns: Sequence[str], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._labels = tuple(columns)

    def on_mount(self) -> None:
        self.add_columns(*self._labels)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def replace_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Show `rows` (key, cells): cells are updated in place when the keys are unchanged, else
        the rows are rebuilt with the cursor kept on the same key and the scroll kept."""
        keys = [key for key, _ in rows]
        if keys == [k.value for k in self.rows]:
            for key, cells in rows:
                for column, value in zip(self.columns, cells, strict=False):
                    if self.get_cell(key, column) != value:
                        self.update_cell(key, column, value, update_width=True)
            return
        selected, scroll_y = self.selected_key(), self.scroll_y
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if selected in keys:
            self.move_cursor(row=keys.index(selected), scroll=False)
        self.scroll_to(y=scroll_y, animate=False)
