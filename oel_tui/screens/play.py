"""Play: the agent's board and yours on the same map, side by side. Under the agent's board,
the move probabilities the model gives the current state, without (student) and with (teacher)
the run's experience in its prompt, read after every agent turn."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static

from oel_engine.actions import parse_action

from ..messages import WorkFinished
from ..widgets.board import BoardView
from ..widgets.move_bars import MoveBars

KEY_MOVES = {"up": "up", "down": "down", "left": "left", "right": "right", "w": "up", "a": "left", "s": "down", "d": "right"}
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between agent moves while running


class Score:
    def __init__(self) -> None:
        self.games = self.wins = 0

    def add(self, won: bool) -> None:
        self.games += 1
        self.wins += int(won)

    def __str__(self) -> str:
        rate = self.wins / self.games if self.games else 0.0
        return f"{self.games} games, {self.wins} wins ({rate:.0%})"


class MoveLog(RichLog, can_focus=False):
    """A wrapping log that never takes focus: arrows and WASD belong to the person's board."""

    def __init__(self, **kwargs):
        super().__init__(wrap=True, markup=False, highlight=False, min_width=20, **kwargs)

    def write_line(self, text: str) -> None:
        self.write(text)

    def text(self) -> str:
        return "\n".join(strip.text for strip in self.lines)


class PlayScreen(Screen):
    BINDINGS = [
        Binding("space", "agent_step", "Agent step"),
        Binding("r", "toggle_run", "Run/pause"),
        Binding("plus,equals_sign", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("n", "next_map", "Next map"),
        Binding("up,w", "move('up')", "Up", show=False),
        Binding("down,s", "move('down')", "Down", show=False),
        Binding("left,a", "move('left')", "Left", show=False),
        Binding("right,d", "move('right')", "Right", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.agent_score, self.human_score = Score(), Score()
        self.running = False
        self.speed_index = 2
        self._timer = None
        self._probe_pending = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="boards"):
            with Vertical(classes="side", id="agent-side"):
                yield Static("Agent", classes="side-title")
                yield BoardView(id="agent-board")
                yield Static("", id="agent-status", classes="status")
                yield MoveBars("", id="move-bars")
                yield MoveLog(id="agent-log")
            with Vertical(classes="side", id="human-side"):
                yield Static("You (arrows or WASD)", classes="side-title")
                yield BoardView(id="human-board")
                yield Static("", id="human-status", classes="status")
                yield MoveLog(id="human-log")
        yield Static("", id="score")
        yield Footer()

    def on_mount(self) -> None:
        self.seed = self.app.settings.seed
        self.new_games()

    # -- games ----------------------------------------------------------------------------------

    def new_games(self) -> None:
        engine, game = self.app.engine, self.app.settings.game
        self.agent_game = engine.new_game(game, self.seed)
        self.human_game = engine.new_game(game, self.seed)
        self.query_one("#agent-board", BoardView).board = self.agent_game.board()
        self.query_one("#human-board", BoardView).board = self.human_game.board()
        for side in ("agent", "human"):
            self.query_one(f"#{side}-log", MoveLog).write_line(f"-- map seed {self.seed}: {game.label()} --")
        self.refresh_status()
        self.request_probe()

    # -- the move-probability probe ---------------------------------------------------------------

    def request_probe(self) -> None:
        """Read the move probabilities of the agent's current state in the background."""
        game = self.agent_game
        bars = self.query_one("#move-bars", MoveBars)
        if game.done:
            bars.message("Game over: press n (or space) for the next map.")
            self._probe_pending = False
            return
        busy_with = self.app.jobs.current
        if busy_with is not None:
            self._probe_pending = True
            if busy_with not in ("probe", "agent-move"):
                bars.message(f"The model is busy ({busy_with}); move probabilities show when it is free.")
            return
        self._probe_pending = False
        engine, run, turn = self.app.engine, self.app.settings.run, game.turns

        def work(on_event, stop):
            experience = None
            if run:
                try:
                    experience = engine.teacher_context(run)
                except Exception:  # an unreadable run: show the student alone
                    experience = None
            student, teacher, good = engine.move_probs(game, experience)
            self.app.call_from_thread(self._show_probe, game, turn, student, teacher, good, experience is not None)

        self.app.jobs.start("probe", work)

    def _show_probe(self, game, turn, student, teacher, good, has_experience) -> None:
        if game is not self.agent_game or game.turns != turn:
            return  # the board moved on while the model was reading it
        if self.app.engine.model_name() is None:
            note = "No model loaded: a random agent (uniform over legal moves)."
        elif not has_experience and not self.app.settings.run:
            note = "No run chosen, so no experience: no teacher to show."
        elif not has_experience:
            note = "No experience in this run yet: no teacher to show."
        else:
            note = "Teacher: the same weights, the run's experience in the prompt."
        self.query_one("#move-bars", MoveBars).show(student, teacher, good, note)

    def refresh_status(self) -> None:
        def status(game):
            if game.done:
                return ("WON" if game.success else "lost") + f": {game.reason}"
            return f"turn {game.turns + 1} of {game.max_turns}"

        self.query_one("#agent-status", Static).update(status(self.agent_game))
        self.query_one("#human-status", Static).update(status(self.human_game))
        model = self.app.engine.model_name() or "random agent (no model loaded)"
        state = f"running every {SPEEDS[self.speed_index]:g} s" if self.running else "paused"
        self.query_one("#score", Static).update(
            f"Agent [{model}]: {self.agent_score}   You: {self.human_score}   seed {self.seed}   {state}")
        self.app.refresh_bindings()

    # -- the person -------------------------------------------------------------------------------

    def action_move(self, direction: str) -> None:
        if self.human_game.done:
            return
        result = self.human_game.step(f"[{direction}]")
        self.query_one("#human-board", BoardView).board = result.board
        self.query_one("#human-log", MoveLog).write_line(f"you: [{direction}] -> {first_line(result.feedback)}")
        if result.done:
            self.human_score.add(self.human_game.success)
            self.app.save_human_game(self.human_game)
        self.refresh_status()

    # -- the agent --------------------------------------------------------------------------------

    def action_agent_step(self) -> None:
        if self.agent_game.done:
            self.action_next_map()
            return
        game, sampling = self.agent_game, self.app.settings.sampling
        busy_with = self.app.jobs.current
        if not self.app.jobs.start("agent-move", lambda on_event, stop: self._agent_move(game, sampling)):
            if busy_with not in ("agent-move", "probe"):
                self.notify(f"The model is busy ({busy_with}); the agent moves when it is free.", severity="warning")

    def _agent_move(self, game, sampling) -> None:
        move = self.app.engine.agent_move(game, sampling)
        self.app.call_from_thread(self._apply_agent_move, game, move)

    def _apply_agent_move(self, game, move) -> None:
        if game is not self.agent_game or game.done:
            return  # the map changed while the model was thinking
        result = game.step(move.response)
        self.query_one("#agent-board", BoardView).board = result.board
        log = self.query_one("#agent-log", MoveLog)
        action = parse_action(move.response)
        log.write_line(f"agent said: {move.response.strip()[:300]}")
        log.write_line(f"  action: {('[' + action + ']') if action else 'none found'} -> {first_line(result.feedback)}")
        if result.done:
            self.agent_score.add(game.success)
            log.write_line(f"  game over: {result.reason}")
        self.refresh_status()

    def on_work_finished(self, message: WorkFinished) -> None:
        if message.job == "agent-move" and message.outcome == "failed":
            self.notify(message.detail, title="The agent could not move", severity="error")
            self.running = False
            self.refresh_status()
        elif message.job == "probe" and message.outcome == "failed":
            self.query_one("#move-bars", MoveBars).message(f"Move probabilities unavailable: {message.detail}")
        if message.job == "agent-move" and message.outcome == "ok" or self._probe_pending:
            self.request_probe()

    def action_toggle_run(self) -> None:
        self.running = not self.running
        if self.running and self._timer is None:
            self._timer = self.set_interval(SPEEDS[self.speed_index], self._tick)
        elif not self.running and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.refresh_status()

    def _tick(self) -> None:
        if self.running and not self.app.jobs.busy:
            self.action_agent_step()

    def _set_speed(self, index: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, index))
        if self._timer is not None:
            self._timer.stop()
            self._timer = self.set_interval(SPEEDS[self.speed_index], self._tick)
        self.refresh_status()

    def action_faster(self) -> None:
        self._set_speed(self.speed_index - 1)

    def action_slower(self) -> None:
        self._set_speed(self.speed_index + 1)

    def action_next_map(self) -> None:
        self.seed += 1
        self.new_games()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "agent_step" and self.app.jobs.busy:
            return None  # shown greyed out while the model is busy
        if action == "move" and self.human_game.done:
            return None
        return True


def first_line(text: str) -> str:
    lines = [l for l in (text or "").splitlines() if l.strip()]
    return lines[0][:120] if lines else ""
