"""The help screen (?): every key, by screen, laid out for the terminal's width.

The text holds no line breaks of its own inside a sentence: each key's description wraps in its
column at whatever width the terminal has, so nothing is wrapped twice."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

TITLE = "oel-tui - watch a language model learn from its own experience"

# (section, [(keys, what they do)], notes): notes are whole paragraphs
SECTIONS: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    ("Everywhere", [
        ("1 2 3 4 5", "Start, Play, Experience, Rounds, Replay"),
        ("?", "this help"),
        ("q", "quit (stops a running job cleanly; the run resumes later)"),
    ], []),
    ("Start", [
        ("Tab / shift+Tab", "the next / previous field, top to bottom"),
        ("Enter", "in the run name: create the run; in the model field: load it; on a run row: choose it"),
        ("Escape", "leave a text field: 1-5 and the letters are keys again, not text"),
        ("l", "load the model"),
        ("n", "create the run named in the field"),
    ], []),
    ("Play (an agent and you on the same map, or two agents: versus)", [
        ("arrows, W A S D", "your move"),
        ("space", "the agent's step (both agents in versus)"),
        ("r", "run / pause the agents"),
        ("+ / -", "faster / slower"),
        ("n", "next map (every board)"),
        ("v", "versus: a second agent in place of your board"),
        ("m / b", "who plays the first / the second agent"),
    ], [
        "Models to pick: the run's base, each finished round's model (its adapters switched on one base) and "
        "the teacher (the newest model with the run's experience in its prompt). A finished round joins the list. "
        "Under each board: its tally of wins, legal moves and turns.",
        "Bars: the probability the model gives each move on this state, read after \"[\" in one forward pass. "
        "student = no experience in the prompt; teacher = the same weights with the run's experience. In versus "
        "each board shows what it plays with. ✓ marks the good moves.",
    ]),
    ("Experience", [
        ("up / down", "choose an item"),
        ("e", "enable / disable it"),
        ("Enter", "edit it"),
        ("n", "write a new lesson"),
        ("f", "refresh"),
        ("t", "teach: a round of the teach preset (a few minutes on a laptop) that skips extraction and "
              "consolidates your lessons; then Play shows the base against the taught model on a held-out map"),
    ], [
        "Marks: + new this round, - disabled (left out of consolidation), * edited. Your lessons (run \"you\") go "
        "to this round's teacher after the extracted experience. A run that has begun rounds of its own teaches "
        "in a new run, NAME-teach.",
    ]),
    ("Rounds (work runs in a background process; the screens stay live)", [
        ("g", "a whole round"),
        ("x  o  k  v", "extract, collect, consolidate, evaluate: one stage"),
        ("c", "cancel after the current unit of work (again: at once)"),
        ("t", "next chart: per round, training steps, in-context curve, table"),
        ("l", "the last lines of the worker's log"),
    ], ["A cancelled or interrupted stage resumes where it stopped when started again."]),
    ("Replay (the run's saved games)", [
        ("Tab", "reach the filters: round, player, stage, outcome"),
        ("up / down", "choose a game"),
        ("n / p", "next / previous turn: the board before and after, the whole prompt, the response, the parsed "
                  "move and the game's reply"),
    ], []),
]


def help_renderable() -> Group:
    parts: list = [Text(TITLE, style="bold")]
    for title, keys, notes in SECTIONS:
        parts.append(Text(""))
        parts.append(Text(title, style="bold underline"))
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(ratio=1)
        for key, what in keys:
            table.add_row(key, what)
        parts.append(table)
        parts.extend(Text(note) for note in notes)
    return Group(*parts)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_renderable(), id="help-text")
