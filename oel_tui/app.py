"""The oel-tui app. For now: watch the random agent play, one game at a time (the full app grows here)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Log, Static

from oel_engine.config import GameConfig
from oel_engine.games import make_game
from oel_engine.policies import RandomPolicy, TurnRequest
from oel_engine.prompts import turn_messages

from .widgets.board import BoardView


class OelApp(App):
    TITLE = "oel-tui"
    SUB_TITLE = "Online Experiential Learning"
    CSS = """
    #main { height: 1fr; }
    #left { width: auto; min-width: 24; padding: 1 2; }
    #log { width: 1fr; }
    #score { height: 1; padding: 0 2; }
    """
    BINDINGS = [
        Binding("space", "step", "Agent step"),
        Binding("n", "new_game", "New game"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, game: str = "frozenlake", seed: int = 0):
        super().__init__()
        self.game_config = GameConfig(name=game)
        self.seed = seed
        self.policy = RandomPolicy(seed)
        self.games = self.wins = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Static(self.game_config.label(), id="title")
                yield BoardView(id="board")
            yield Log(id="log", highlight=False)
        yield Static("", id="score")
        yield Footer()

    def on_mount(self) -> None:
        self.action_new_game()

    def action_new_game(self) -> None:
        self.game = make_game(self.game_config)
        self.game.reset(self.seed)
        self.query_one(BoardView).board = self.game.board()
        self.query_one(Log).write_line(f"-- new game, seed {self.seed} --")
        self._score()

    def action_step(self) -> None:
        if self.game.done:
            self.seed += 1
            self.action_new_game()
            return
        request = TurnRequest(0, turn_messages(self.game.player_description, self.game.messages),
                              self.game.board(), self.game.legal_moves(), self.game.turns)
        reply = self.policy.act([request])[0]
        result = self.game.step(reply.text)
        self.query_one(BoardView).board = result.board
        log = self.query_one(Log)
        log.write_line(f"turn {self.game.turns}: agent says {reply.text} -> {result.feedback.splitlines()[0] if result.feedback else ''}")
        if result.done:
            self.games += 1
            self.wins += int(self.game.success)
            log.write_line(f"game over: {'WON' if self.game.success else 'lost'} - {result.reason}")
        self._score()

    def _score(self) -> None:
        rate = self.wins / self.games if self.games else 0.0
        self.query_one("#score", Static).update(f"random agent: {self.games} games, {self.wins} wins, pass rate {rate:.0%}")
