"""The oel-tui app: Start, Play, Experience, Rounds and Replay screens over one engine service."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from oel_engine.config import GameConfig, ModelConfig, SamplingConfig

from .engine import EngineService, LocalEngine
from .jobs import JobRunner
from .messages import EngineEvents, WorkFinished
from .screens.experience import ExperienceScreen
from .screens.help import HelpScreen
from .screens.play import PlayScreen
from .screens.replay import ReplayScreen
from .screens.rounds import RoundsScreen
from .screens.start import StartScreen
from .worker_process import StageProcesses


@dataclass
class Settings:
    game: GameConfig = field(default_factory=GameConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=64))
    run: str | None = None
    seed: int = 0
    autoload: bool = False  # load the model as the app starts (the command line does)


class OelApp(App):
    TITLE = "oel-tui"
    SUB_TITLE = "Online Experiential Learning"
    CSS_PATH = "oel.tcss"
    MODES = {"start": StartScreen, "play": PlayScreen, "experience": ExperienceScreen, "rounds": RoundsScreen,
             "replay": ReplayScreen}
    DEFAULT_MODE = "start"
    BINDINGS = [
        Binding("1", "switch_mode('start')", "Start"),
        Binding("2", "switch_mode('play')", "Play"),
        Binding("3", "switch_mode('experience')", "Experience"),
        Binding("4", "switch_mode('rounds')", "Rounds"),
        Binding("5", "switch_mode('replay')", "Replay"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, engine: EngineService | None = None, settings: Settings | None = None,
                 saves: Path | str = "saves", stages: StageProcesses | None = None):
        super().__init__()
        self.engine = engine or LocalEngine(Path(saves))
        self.settings = settings or Settings()
        self.jobs = JobRunner(self)
        # Rounds and stages of the real engine run in a child process; an injected engine (the
        # tests' fake) runs them in a thread, or in a child when `stages` is given.
        self.stages: StageProcesses | None = stages if stages is not None else (
            StageProcesses(Path(saves)) if engine is None else None)

    def run_stage(self, name: str, stage: str, on_event, stop) -> None:
        """A stage of run `name`: in the worker process when there is one, else in this thread."""
        if self.stages is not None:
            self.stages.status = lambda text: self.call_from_thread(self.notify, text, timeout=4)
            self.stages.run_stage(name, stage, on_event, stop)
        else:
            self.engine.run_stage(name, stage, on_event, stop)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _screens_listening(self):
        seen = []
        for name in self.MODES:
            try:
                stack = self._screen_stacks.get(name) or []
            except AttributeError:
                stack = []
            seen.extend(stack)
        return seen

    def on_engine_events(self, message: EngineEvents) -> None:
        for screen in self._screens_listening():
            handler = getattr(screen, "on_engine_events", None)
            if handler is not None and screen.is_mounted:
                handler(message)

    async def on_work_finished(self, message: WorkFinished) -> None:
        for screen in self._screens_listening():
            handler = getattr(screen, "on_work_finished", None)
            if handler is not None and screen.is_mounted:
                handler(message)
        self.refresh_bindings()
        if message.job == "teach" and message.outcome == "ok":
            await self.show_what_was_taught()

    async def show_what_was_taught(self) -> None:
        """After a teaching round: Play in versus, the base against the taught model, on a held-out map."""
        from oel_engine.config import EVAL_SEED_BASE
        from oel_engine.play.agents import AgentChoice, newest

        run = self.settings.run
        taught = newest(self.engine.agent_choices(run))
        await self.switch_mode("play")
        self.screen.open_versus(AgentChoice(run, 0), taught, EVAL_SEED_BASE)
        self.notify(f"The base (left) against {taught.label} (right) on a held-out map: space steps both, "
                    "r runs them, n next map.", title="Taught", timeout=10)

    def save_human_game(self, game) -> None:
        """A person's finished game goes into the current run, labelled human; with no run chosen
        a new run (demo preset, this game and model) is made for it and chosen."""
        from oel_engine.presets import build

        new = None if self.settings.run else build("demo", self.settings.game, self.settings.model, 2)
        try:
            name, _ = self.engine.save_human_game(self.settings.run, game, new)
        except Exception as exc:
            self.notify(f"Your game was not saved: {exc}", severity="warning")
            return
        if not self.settings.run:
            self.settings.run = name
            self.notify(f"No run was chosen: your game was saved in a new run, {name} (now the current run).")

    async def action_quit(self) -> None:
        if self.jobs.busy:
            if self.stages is not None and self.stages.current is not None:
                self.jobs.stop.force()  # the worker process ends within seconds; the run resumes from its last unit
            else:
                self.jobs.cancel()
            self.notify("Stopping the running job; the run can be resumed.")
            for worker in list(self.workers):
                if worker.group == "engine":
                    await worker.wait()
        self.exit()
