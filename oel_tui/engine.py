"""The app's one door into the engine. Heavy imports (torch, transformers) happen inside
methods, which the app calls from worker threads; the UI thread never blocks on them.

`EngineService` is what screens use; `LocalEngine` runs the real engine in this process; tests
pass a fake with the same methods (no torch at all). Keeping the boundary this narrow is what
would let a GPU round run in a subprocess later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from oel_engine.config import GameConfig, LoopConfig, ModelConfig, SamplingConfig
from oel_engine.events import Event, StopFlag
from oel_engine.games import Game, make_game
from oel_engine.policies import RandomPolicy, TurnRequest
from oel_engine.prompts import turn_messages
from oel_engine.storage import RunSummary, list_runs


@dataclass
class AgentMove:
    response: str
    response_tokens: int = 0


@dataclass
class ItemView:
    """One experience item with its provenance, as the Experience screen lists it."""

    round: int
    run: int
    step: int
    text: str
    episode_id: str
    source: str
    enabled: bool = True
    edited: bool = False
    new_this_round: bool = False


@dataclass
class RunView:
    name: str
    config: LoopConfig | None
    metrics: list[dict] = field(default_factory=list)
    rounds_done: int = 0


class EngineService(Protocol):
    saves: Path

    def runs(self) -> list[RunSummary]: ...

    def load_model(self, model: ModelConfig, status: Callable[[str], None]) -> str: ...

    def model_name(self) -> str | None: ...

    def new_game(self, game: GameConfig, seed: int) -> Game: ...

    def agent_move(self, game: Game, sampling: SamplingConfig) -> AgentMove: ...

    def open_run(self, name: str, config: LoopConfig | None) -> RunView: ...

    def run_stage(self, name: str, stage: str, on_event: Callable[[Event], None], stop: StopFlag) -> None: ...

    def experience(self, name: str) -> list[ItemView]: ...

    def set_item(self, name: str, item: ItemView, enabled: bool, text: str) -> None: ...


class LocalEngine:
    """The real engine in this process. The model loads on first use (in a worker thread)."""

    def __init__(self, saves: Path):
        self.saves = Path(saves)
        self.lm = None
        self._random = RandomPolicy(0)

    # -- runs -------------------------------------------------------------------------------------

    def runs(self) -> list[RunSummary]:
        return list_runs(self.saves)

    def open_run(self, name: str, config: LoopConfig | None) -> RunView:
        from oel_engine.artifacts import RunArtifacts
        from oel_engine.runs import open_loop_run

        store, cfg = open_loop_run(self.saves, name, config)
        try:
            return RunView(name, cfg, store.metrics(), RunArtifacts(store).rounds_done())
        finally:
            store.close()

    # -- the model and play -----------------------------------------------------------------------

    def load_model(self, model: ModelConfig, status: Callable[[str], None]) -> str:
        from oel_engine.model.loader import load_language_model

        self.lm = load_language_model(model, status=status)
        return self.lm.name

    def model_name(self) -> str | None:
        return self.lm.name if self.lm is not None else None

    def new_game(self, game: GameConfig, seed: int) -> Game:
        g = make_game(game)
        g.reset(seed)
        return g

    def agent_move(self, game: Game, sampling: SamplingConfig) -> AgentMove:
        request = TurnRequest(("tui", game.seed), turn_messages(game.player_description, game.messages),
                              game.board(), game.legal_moves(), game.turns)
        if self.lm is None:
            return AgentMove(self._random.act([request])[0].text)
        from oel_engine.policies import ModelPolicy

        reply = ModelPolicy(self.lm, sampling, seed=game.turns).act([request])[0]
        return AgentMove(reply.text, reply.response_tokens)

    # -- rounds -----------------------------------------------------------------------------------

    def run_stage(self, name: str, stage: str, on_event, stop: StopFlag) -> None:
        from oel_engine.loop import RoundRunner
        from oel_engine.runs import open_loop_run

        store, cfg = open_loop_run(self.saves, name, None)
        try:
            if self.lm is None:
                self.load_model(cfg.model, lambda _: None)
            runner = RoundRunner(store, cfg, self.lm, on_event=on_event, stop=stop)
            r = runner.art.rounds_done()
            actions = {
                "round": lambda: runner.run_round(r),
                "extract": lambda: runner.extract(r),
                "collect": lambda: runner.collect(r),
                "consolidate": lambda: runner.consolidate(r),
                "evaluate": lambda: runner.evaluate(r, "consolidated" if runner.art.stage_done(r, "consolidate") else "base"),
            }
            actions[stage]()
            self.lm = runner.lm
        finally:
            store.close()

    # -- experience -------------------------------------------------------------------------------

    def experience(self, name: str) -> list[ItemView]:
        from oel_engine.artifacts import RunArtifacts
        from oel_engine.storage import RunStore

        store = RunStore(self.saves, name, create=False)
        try:
            records = RunArtifacts(store).snapshot_records()
        finally:
            store.close()
        latest: dict[tuple[int, int], dict] = {}
        for (r, k, n), rec in sorted(records.items()):
            latest[(r, k)] = rec  # the newest step of each extraction run
        last_round = max((r for r, _ in latest), default=0)
        items = []
        for (r, k), rec in sorted(latest.items()):
            for i in rec.get("items", []):
                items.append(ItemView(i["round"], i["run"], i["step"], i["text"], i["episode_id"], i.get("source", "model"),
                                      i.get("enabled", True), i.get("edited", False), new_this_round=i["round"] == last_round))
        return items

    def set_item(self, name: str, item: ItemView, enabled: bool, text: str) -> None:
        from oel_engine.artifacts import RunArtifacts
        from oel_engine.storage import RunStore

        store = RunStore(self.saves, name, create=False)
        try:
            art = RunArtifacts(store)
            records = art.snapshot_records(item.round)
            steps = sorted(n for (r, k, n) in records if k == item.run)
            fmt = records[(item.round, item.run, steps[-1])].get("format", "structured") if steps else "structured"
            for n in steps:  # every later snapshot that still holds the item
                state = art.load_state(item.round, item.run, n, records)
                changed = False
                for it in state.items:
                    if it.text == item.text and it.step == item.step and it.episode_id == item.episode_id:
                        it.enabled, it.edited = enabled, it.edited or text != it.text
                        it.text = text
                        changed = True
                if changed:
                    art.save_edit(state, fmt)
        finally:
            store.close()
