"""Choosing which model plays a board: the run's base, a finished round's model, or the teacher."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class PickModel(ModalScreen):
    """Dismisses with the chosen AgentChoice, or None (Esc)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, side: str, choices: list, current=None):
        super().__init__()
        self.side, self.choices, self.current = side, list(choices), current

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Static(f"Who plays {self.side}? (Enter chooses, Esc cancels)")
            options = [Option(("● " if c == self.current else "  ") + c.label, id=str(i))
                       for i, c in enumerate(self.choices)]
            yield OptionList(*options, id="pick-list")

    def on_mount(self) -> None:
        picker = self.query_one("#pick-list", OptionList)
        picker.highlighted = self.choices.index(self.current) if self.current in self.choices else 0
        picker.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id)])
