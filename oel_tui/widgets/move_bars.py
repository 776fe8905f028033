"""Bars of the move probabilities on the current state: student (no experience) and teacher
(the same weights with the run's experience in the prompt), good moves marked."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

MOVES = ("up", "down", "left", "right")
WIDTH = 12  # characters of a full bar


def bar(p: float, style: str) -> Text:
    filled = round(max(0.0, min(1.0, p)) * WIDTH)
    return Text("█" * filled, style=style) + Text("░" * (WIDTH - filled), style="dim") + Text(f" {p:.2f}")


class MoveBars(Static):
    """Set with `show(student, teacher, good, note)`; MoveProbs-like objects (`.probs`, `.mass`)."""

    def show(self, student, teacher, good: list[str], note: str = "") -> None:
        self.shown = (student, teacher, good)
        table = Table.grid(padding=(0, 1))
        table.add_column("move")
        table.add_column("student")
        if teacher is not None:
            table.add_column("teacher")
        header = [Text("move", style="bold"), Text("student", style="bold")]
        if teacher is not None:
            header.append(Text("teacher", style="bold"))
        table.add_row(*header)
        for move in MOVES:
            mark = Text(f"{move:<5} " + ("✓" if move in good else " "), style="bold green" if move in good else "")
            cells = [mark, bar(student.probs.get(move, 0.0), "cyan")]
            if teacher is not None:
                cells.append(bar(teacher.probs.get(move, 0.0), "magenta"))
            table.add_row(*cells)
        on_good = sum(student.probs.get(m, 0.0) for m in good)
        summary = f"✓ = good move. On good moves: student {on_good:.2f}"
        if teacher is not None:
            summary += f", teacher {sum(teacher.probs.get(m, 0.0) for m in good):.2f}"
        if not good:
            summary = "No move leads to a win from here."
        lines = Text(summary)
        if getattr(student, "mass", 1.0) < 1.0:
            lines.append(f"\nMove tokens hold {student.mass:.0%} of the student's probability after '['.")
        if note:
            lines.append(f"\n{note}", style="dim")
        from rich.console import Group

        self.update(Group(table, lines))

    def message(self, text: str) -> None:
        self.shown = None
        self.update(Text(text, style="dim"))
