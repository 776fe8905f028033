"""Bars of the move probabilities on the current state, one column per reading (the agent as it
plays, the same weights with the run's experience in the prompt, ...), good moves marked."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

MOVES = ("up", "down", "left", "right")
WIDTH = 12  # characters of a full bar
STYLES = ("cyan", "magenta", "green", "yellow")


def bar(p: float, style: str) -> Text:
    filled = round(max(0.0, min(1.0, p)) * WIDTH)
    return Text("█" * filled, style=style) + Text("░" * (WIDTH - filled), style="dim") + Text(f" {p:.2f}")


class MoveBars(Static):
    """Set with `show(columns, good, note)`: columns are (label, MoveProbs-like) pairs (`.probs`,
    `.mass`); the first column is the agent as it plays. `shown` keeps what is on screen."""

    shown: tuple[dict, list[str]] | None = None

    def show(self, columns: list[tuple[str, object]], good: list[str], note: str = "") -> None:
        self.shown = (dict(columns), list(good))
        table = Table.grid(padding=(0, 1))
        table.add_column("move")
        for _ in columns:
            table.add_column()
        table.add_row(Text("move", style="bold"), *(Text(label, style="bold") for label, _ in columns))
        for move in MOVES:
            mark = Text(f"{move:<5} " + ("✓" if move in good else " "), style="bold green" if move in good else "")
            table.add_row(mark, *(bar(probs.probs.get(move, 0.0), STYLES[i % len(STYLES)])
                                  for i, (_, probs) in enumerate(columns)))
        if good:
            summary = "✓ = good move. On good moves: " + ", ".join(
                f"{label} {sum(probs.probs.get(m, 0.0) for m in good):.2f}" for label, probs in columns)
        else:
            summary = "No move leads to a win from here."
        lines = Text(summary)
        label, first = columns[0]
        if getattr(first, "mass", 1.0) < 1.0:
            lines.append(f"\n{first.mass:.0%} of the answers that open like a move ('[') write one ({label}).")
        if note:
            lines.append(f"\n{note}", style="dim")
        self.update(Group(table, lines))

    def message(self, text: str) -> None:
        self.shown = None
        self.update(Text(text, style="dim"))
