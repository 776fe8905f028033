"""One player's side of the Play screen: title, board, status, tally and a log of its moves.

An agent's panel also shows its move-probability bars. Each panel owns its game, so two agents
(or an agent and a person) play the same map side by side, each at its own pace.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import RichLog, Static

from ..widgets.board import BoardView
from ..widgets.move_bars import MoveBars


class Tally:
    """Games, wins, turns and legal moves of one player over the maps played on this screen."""

    def __init__(self) -> None:
        self.games = self.wins = self.turns = self.legal = 0

    def add_turn(self, legal: bool) -> None:
        self.turns += 1
        self.legal += int(legal)

    def add_game(self, won: bool) -> None:
        self.games += 1
        self.wins += int(won)

    def __str__(self) -> str:
        rate = self.wins / self.games if self.games else 0.0
        legal = f"{self.legal}/{self.turns} legal ({self.legal / self.turns:.0%})" if self.turns else "0 moves"
        per_game = f", {self.turns / self.games:.1f} turns/game" if self.games else ""
        return f"{self.wins}/{self.games} won ({rate:.0%}), {legal}{per_game}"


class MoveLog(RichLog, can_focus=False):
    """A wrapping log that never takes focus: arrows and WASD belong to the person's board."""

    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, highlight=False, min_width=20, **kwargs)

    def write_line(self, text: str) -> None:
        self.write(text)

    def text(self) -> str:
        return "\n".join(strip.text for strip in self.lines)


class PlayerPanel(Vertical):
    """A board with its player's game and tally; `game` is set by the screen."""

    DEFAULT_CLASSES = "side"

    def __init__(self, title: str, **kwargs):
        super().__init__(**kwargs)
        self.title_text = title
        self.game = None
        self.tally = Tally()
        self._heading = ""

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, classes="side-title")
        yield BoardView()
        yield Static("", classes="status")
        yield from self.extra()
        yield MoveLog()

    def extra(self) -> ComposeResult:
        yield from ()

    @property
    def log_view(self) -> MoveLog:
        return self.query_one(MoveLog)

    def set_title(self, text: str) -> None:
        self.title_text = text
        self.query_one(".side-title", Static).update(text)

    def start(self, game, heading: str) -> None:
        self.game = game
        self.query_one(BoardView).board = game.board()
        if heading != self._heading:  # the same map again (a restart) needs no second heading
            self.log_view.write_line(heading)
            self._heading = heading
        self.refresh_status()

    def show_board(self, board) -> None:
        self.query_one(BoardView).board = board

    def refresh_status(self) -> None:
        game = self.game
        if game is None:
            return
        state = (("WON" if game.success else "lost") + f": {game.reason}") if game.done else \
            f"turn {game.turns + 1} of {game.max_turns}"
        self.query_one(".status", Static).update(f"{state}\n{self.tally}")

    def record_turn(self, result) -> None:
        """A move's result: the board, the tally, and the game's end."""
        self.show_board(result.board)
        self.tally.add_turn(bool(result.valid))
        if result.done:
            self.tally.add_game(self.game.success)
        self.refresh_status()


class AgentPanel(PlayerPanel):
    """A model's side: `choice` says which model (an AgentChoice), bars show what it would play."""

    def __init__(self, title: str, choice, **kwargs):
        super().__init__(title, **kwargs)
        self.choice = choice

    def extra(self) -> ComposeResult:
        yield MoveBars("")

    @property
    def bars(self) -> MoveBars:
        return self.query_one(MoveBars)
