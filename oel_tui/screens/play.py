"""Play: an agent and you on the same map, or two agents side by side (versus).

Any model of the run can play: the base, any finished round's consolidated model, or the teacher
(the newest model with the run's experience in its prompt); `m` picks the first agent's, `b` the
second's. Under each agent's board, the move probabilities it gives the current state, read
after every turn. Versus (`v`) puts a second agent where your board was: by default the base
against the newest round, each with its own tally of wins, legal moves and turns.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from oel_engine.config import EVAL_SEED_BASE
from oel_engine.games.actions import parse_action
from oel_engine.play.agents import AgentChoice, newest

from ..follow import POLL_SECONDS
from ..jobs import STAGE_JOBS
from ..messages import WorkFinished
from ..widgets.player_panel import AgentPanel, PlayerPanel, Tally
from .pick_model import PickModel

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)  # seconds between agent moves while running


class PlayScreen(Screen):
    BINDINGS = [
        Binding("space", "agent_step", "Agent step"),
        Binding("r", "toggle_run", "Run/pause"),
        Binding("plus,equals_sign", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("n", "next_map", "Next map"),
        Binding("m", "pick('a')", "Model"),
        Binding("b", "pick('b')", "2nd model"),
        Binding("v", "toggle_versus", "Versus"),
        Binding("up,w", "move('up')", "Up", show=False),
        Binding("down,s", "move('down')", "Down", show=False),
        Binding("left,a", "move('left')", "Left", show=False),
        Binding("right,d", "move('right')", "Right", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self.versus = False
        self.speed_index = 2
        self._timer = None
        self._probe_pending = False
        self._step_pending = False  # space was pressed while the probe ran
        self.run_name: str | None = None
        self.choices: list[AgentChoice] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="play-title")
        with Horizontal(id="boards"):
            yield AgentPanel("Agent", AgentChoice(None), id="agent-a")
            yield PlayerPanel("You (arrows or WASD)", id="human")
            yield AgentPanel("Agent B", AgentChoice(None), id="agent-b")
        yield Static("", id="score")
        yield Footer()

    @property
    def agent_a(self) -> AgentPanel:
        return self.query_one("#agent-a", AgentPanel)

    @property
    def agent_b(self) -> AgentPanel:
        return self.query_one("#agent-b", AgentPanel)

    @property
    def human(self) -> PlayerPanel:
        return self.query_one("#human", PlayerPanel)

    # the first agent's and the person's games, by the names the rest of the app knows
    @property
    def agent_game(self):
        return self.agent_a.game

    @property
    def human_game(self):
        return self.human.game

    def agents(self) -> list[AgentPanel]:
        """The agents on screen: the first, and the second in versus."""
        return [self.agent_a, self.agent_b] if self.versus else [self.agent_a]

    def on_mount(self) -> None:
        self.seed = self.app.settings.seed
        self.agent_b.display = False
        self.follow_run()
        self.set_interval(POLL_SECONDS, self.watch_rounds)

    def on_screen_resume(self) -> None:
        if self.app.settings.run != self.run_name:
            self.follow_run()
        else:
            self.watch_rounds()

    # -- which models play ----------------------------------------------------------------------

    def read_choices(self) -> list[AgentChoice]:
        try:
            return self.app.engine.agent_choices(self.app.settings.run)
        except Exception:  # an unreadable run: the loaded model still plays
            return [AgentChoice(None)]

    def follow_run(self) -> None:
        """The run changed (or the screen opened): its base plays first, the newest round second."""
        self.run_name = self.app.settings.run
        self.choices = self.read_choices()
        self.set_choice(self.agent_a, self.choices[0], restart=False)
        self.set_choice(self.agent_b, newest(self.choices), restart=False)
        self.new_games()

    def watch_rounds(self) -> None:
        """A round that finished (here or in a process the app follows) joins the picker."""
        if self.app.settings.run != self.run_name or self.app.jobs.current in STAGE_JOBS:
            return
        before = {c.key for c in self.choices}
        self.choices = self.read_choices()
        fresh = [c for c in self.choices if c.key not in before and not c.teacher]
        if fresh and before:
            self.notify(f"{fresh[-1].label} is ready: press m (or b in versus) to let it play.", title="New model")
        self.refresh_title()

    def set_choice(self, panel: AgentPanel, choice: AgentChoice, restart: bool = True) -> None:
        changed = panel.choice != choice
        panel.choice = choice
        if changed:
            panel.tally = Tally()  # a tally belongs to one model
        name = "Agent B" if panel is self.agent_b else "Agent A" if self.versus else "Agent"
        panel.set_title(f"{name}: {self.describe(choice)}")
        if restart:
            self.new_games()

    def describe(self, choice: AgentChoice) -> str:
        if choice.run is None:
            return self.app.engine.model_name() or "random agent (no model loaded)"
        return choice.label

    def action_pick(self, side: str) -> None:
        panel = self.agent_b if side == "b" else self.agent_a
        self.choices = self.read_choices()

        def chosen(choice: AgentChoice | None) -> None:
            if choice is not None:
                self.set_choice(panel, choice)

        label = "the second board" if side == "b" else "the first board" if self.versus else "the agent's board"
        self.app.push_screen(PickModel(label, self.choices, panel.choice), chosen)

    def action_toggle_versus(self) -> None:
        self.versus = not self.versus
        self.agent_b.display = self.versus
        self.human.display = not self.versus
        if self.versus and self.agent_b.choice.run != self.run_name:
            self.agent_b.choice = newest(self.choices)
        for panel in (self.agent_a, self.agent_b):
            self.set_choice(panel, panel.choice, restart=False)
        self.new_games()

    def open_versus(self, first: AgentChoice, second: AgentChoice, seed: int) -> None:
        """Two given models on map `seed` (after a teaching round: the base against the taught model)."""
        if self.app.settings.run != self.run_name:
            self.follow_run()
        self.choices = self.read_choices()
        self.versus = False
        self.action_toggle_versus()
        self.seed = seed
        self.set_choice(self.agent_a, first, restart=False)
        self.set_choice(self.agent_b, second, restart=False)
        self.new_games()

    # -- games ----------------------------------------------------------------------------------

    def new_games(self) -> None:
        engine, game = self.app.engine, self.app.settings.game
        heading = f"-- map seed {self.seed}: {game.label()} --"
        for panel in (self.agent_a, self.agent_b, self.human):
            panel.start(engine.new_game(game, self.seed), heading)
        self.refresh_status()
        self.request_probe()

    def refresh_title(self) -> None:
        run = self.app.settings.run
        keys = "m / b" if self.versus else "m"
        if run is None:
            text = "No run chosen: the model loaded on Start plays (pick or create a run on Start to compare rounds)."
        else:
            models = ", ".join(c.short for c in self.choices)
            text = f"Run {run}: {len(self.choices)} model(s) to pick from ({keys}): {models}.  v: versus"
        self.query_one("#play-title", Static).update(text)

    def refresh_status(self) -> None:
        for panel in (self.agent_a, self.agent_b, self.human):
            panel.refresh_status()
        held_out = " (a held-out map)" if self.seed >= EVAL_SEED_BASE else ""
        state = f"running every {SPEEDS[self.speed_index]:g} s" if self.running else "paused"
        self.query_one("#score", Static).update(f"Map seed {self.seed}{held_out}   agents {state}")
        self.refresh_title()
        self.app.refresh_bindings()

    # -- the move-probability probe ---------------------------------------------------------------

    def request_probe(self) -> None:
        """Read the move probabilities of each agent's current state in the background."""
        waiting = []
        for panel in self.agents():
            if panel.game.done:
                panel.bars.message("Game over: press n (or space) for the next map.")
            else:
                waiting.append((panel, panel.game, panel.game.turns, panel.choice))
        if not waiting:
            self._probe_pending = False
            return
        busy_with = self.app.jobs.current
        if busy_with is not None:
            self._probe_pending = True
            if busy_with not in ("probe", "agent-move"):
                for panel, *_ in waiting:
                    panel.bars.message(f"The model is busy ({busy_with}); move probabilities show when it is free.")
            return
        self._probe_pending = False
        engine, run = self.app.engine, self.app.settings.run

        def work(on_event, stop):
            experience = None
            if run:
                try:
                    experience = engine.teacher_context(run)
                except Exception:  # an unreadable run: show the agents alone
                    experience = None
            for panel, game, turn, choice in waiting:
                if stop.is_set():
                    return
                student, teacher, good = engine.move_probs(game, experience, choice)
                self.app.call_from_thread(self._show_probe, panel, game, turn, choice, student, teacher, good)

        self.app.jobs.start("probe", work)

    def _show_probe(self, panel: AgentPanel, game, turn, choice, student, teacher, good) -> None:
        if game is not panel.game or game.turns != turn or choice != panel.choice:
            return  # the board (or the model) moved on while the model was reading it
        if choice.teacher and teacher is None:
            teacher = student  # the run lost its experience since the choice: the teacher reads nothing
        playing = teacher if choice.teacher else student
        if self.versus:
            columns, note = [(choice.short, playing)], ""
        else:
            columns = [("teacher" if choice.teacher else "student", playing)]
            other = student if choice.teacher else teacher
            if other is not None:
                columns.append(("student" if choice.teacher else "teacher", other))
            note = self._probe_note(choice, other is not None)
        panel.bars.show(columns, good, note)

    def _probe_note(self, choice: AgentChoice, compared: bool) -> str:
        if choice.run is None and self.app.engine.model_name() is None:
            return "No model loaded: a random agent (uniform over legal moves)."
        if not self.app.settings.run:
            return "No run chosen, so no experience: no teacher to show."
        if not compared:
            return "No experience in this run yet: no teacher to show."
        if choice.teacher:
            return "Teacher: these weights with the run's experience in the prompt; student: without it."
        return "Teacher: the same weights, the run's experience in the prompt."

    # -- the person -------------------------------------------------------------------------------

    def action_move(self, direction: str) -> None:
        game = self.human.game
        if self.versus or game.done:
            return
        result = game.step(f"[{direction}]")
        self.human.record_turn(result)
        self.human.log_view.write_line(f"you: [{direction}] -> {first_line(result.feedback)}")
        if result.done:
            self.app.save_human_game(game)
        self.refresh_status()

    # -- the agents -------------------------------------------------------------------------------

    def action_agent_step(self) -> None:
        todo = [(panel, panel.game, panel.choice) for panel in self.agents() if not panel.game.done]
        if not todo:
            self.action_next_map()
            return
        engine, sampling = self.app.engine, self.app.settings.sampling
        busy_with = self.app.jobs.current

        def work(on_event, stop):
            for panel, game, choice in todo:
                if stop.is_set():
                    return
                move = engine.agent_move(game, sampling, choice)
                self.app.call_from_thread(self._apply_agent_move, panel, game, choice, move)

        if not self.app.jobs.start("agent-move", work):
            if busy_with == "probe":
                self._step_pending = True  # the model is reading the bars: the step follows them
            elif busy_with != "agent-move":
                self.notify(f"The model is busy ({busy_with}); the agent moves when it is free.", severity="warning")

    def _apply_agent_move(self, panel: AgentPanel, game, choice, move) -> None:
        if game is not panel.game or game.done or choice != panel.choice:
            return  # the map (or the model) changed while the model was thinking
        result = game.step(move.response)
        panel.record_turn(result)
        log = panel.log_view
        action = parse_action(move.response)
        log.write_line(f"{choice.short if choice.run else 'agent'} said: {move.response.strip()[:300]}")
        log.write_line(f"  action: {('[' + action + ']') if action else 'none found'} -> {first_line(result.feedback)}")
        if result.done:
            log.write_line(f"  game over: {result.reason}")
        self.refresh_status()

    def on_work_finished(self, message: WorkFinished) -> None:
        if message.job == "agent-move" and message.outcome == "failed":
            self.notify(message.detail, title="The agent could not move", severity="error")
            self.running = False
            self.refresh_status()
        elif message.job == "probe" and message.outcome == "failed":
            for panel in self.agents():
                panel.bars.message(f"Move probabilities unavailable: {message.detail}")
        if message.job in STAGE_JOBS:
            self.watch_rounds()
        if message.job == "probe" and self._step_pending:
            self._step_pending = False
            self.action_agent_step()
        elif message.job == "agent-move" and message.outcome == "ok" or self._probe_pending:
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
        if action == "agent_step" and self.app.jobs.busy and self.app.jobs.current != "probe":
            return None  # shown greyed out while the model is busy (a step asked for during the probe waits for it)
        if action == "move":
            return None if self.versus or self.human.game is None or self.human.game.done else True
        if action == "pick" and parameters == ("b",) and not self.versus:
            return False
        return True


def first_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[0][:120] if lines else ""
