"""The app's door into the engine: the interface screens use, and the in-process implementation.

`EngineService` is all a screen may call. `LocalEngine` is `oel_engine.session.Engine`, which
satisfies it in this process; tests pass a fake with the same methods (no torch at all). Heavy
imports happen inside the engine's methods, which the app calls from worker threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from oel_engine.config import GameConfig, LoopConfig, ModelConfig, SamplingConfig
from oel_engine.events import Event, StopFlag
from oel_engine.games import Game
from oel_engine.play.agents import AgentChoice
from oel_engine.play.trajectory import Episode
from oel_engine.run.listing import RunSummary
from oel_engine.session import AgentMove, Engine, EpisodeRow, ItemView, RunReport

LocalEngine = Engine
RunView = RunReport


class EngineService(Protocol):
    saves: Path

    def runs(self) -> list[RunSummary]: ...

    def load_model(self, model: ModelConfig, status: Callable[[str], None]) -> str: ...

    def model_name(self) -> str | None: ...

    def new_game(self, game: GameConfig, seed: int) -> Game: ...

    def agent_choices(self, run: str | None) -> list[AgentChoice]: ...

    def agent_move(self, game: Game, sampling: SamplingConfig, agent: AgentChoice | None = None) -> AgentMove: ...

    def open_run(self, name: str, config: LoopConfig | None) -> RunReport: ...

    def run_stage(self, name: str, stage: str, on_event: Callable[[Event], None], stop: StopFlag) -> None: ...

    def experience(self, name: str) -> list[ItemView]: ...

    def set_item(self, name: str, item: ItemView, enabled: bool, text: str) -> None: ...

    def save_human_game(self, name: str | None, game: Game, new_config: LoopConfig | None) -> tuple[str, Episode]: ...

    def add_item(self, name: str, text: str) -> ItemView: ...

    def move_probs(self, game: Game, experience: str | None, agent: AgentChoice | None = None) -> tuple: ...

    def teacher_context(self, name: str) -> str | None: ...

    def episodes(self, name: str) -> list[EpisodeRow]: ...

    def episode(self, name: str, episode_id: str) -> Episode: ...


__all__ = ["AgentChoice", "AgentMove", "EngineService", "EpisodeRow", "ItemView", "LocalEngine", "RunReport", "RunView"]
