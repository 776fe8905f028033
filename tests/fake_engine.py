"""A fake engine for the app's tests: real games, scripted agent, canned runs; no torch."""

from __future__ import annotations

import threading
from pathlib import Path

from oel_engine.config import LoopConfig
from oel_engine.events import MetricsRecorded, Progress, StageFinished, StageStarted
from oel_engine.games import make_game
from oel_engine.metrics import MetricsLog
from oel_engine.rollout import episode_from_game
from oel_engine.runs import RunSummary
from oel_tui.engine import AgentMove, ItemView, RunView


class FakeEngine:
    def __init__(self, saves: Path):
        self.saves = Path(saves)
        self.loaded = None
        self.items = [ItemView(0, 0, 1, "Holes end the game.", "e1", "model"),
                      ItemView(0, 1, 2, "The goal is bottom-right.", "e2", "human", new_this_round=True)]
        self.metrics = [{"phase": "eval", "round": 0, "kind": "base", "pass_rate": 0.1, "pass_rate_std": 0.01,
                         "legal_action_rate": 0.5, "mean_response_tokens": 40.0, "mean_turns": 2.0}]
        self.release = threading.Event()  # a stage waits on it, so tests can act mid-job
        self.stage_calls = []
        self.human_games = []  # (run, episode) saved by save_human_game

    def runs(self):
        return [RunSummary("demo", self.saves / "demo", "frozenlake", "fake", "today", 3, 1, 0.1)]

    def load_model(self, model, status):
        status("loading...")
        if model.model == "broken":
            from oel_engine.errors import OelError

            raise OelError("cannot load model 'broken': not a local folder")
        self.loaded = model.model
        return model.model

    def model_name(self):
        return self.loaded

    def new_game(self, game, seed):
        g = make_game(game)
        g.reset(seed)
        return g

    def agent_move(self, game, sampling):
        return AgentMove("I go [right]", 4)

    def open_run(self, name, config):
        return RunView(name, config or LoopConfig(preset="demo"), MetricsLog.from_dicts(self.metrics), 0)

    def run_stage(self, name, stage, on_event, stop):
        self.stage_calls.append(stage)
        on_event(StageStarted("consolidate", 3, "fake"))
        for step in range(3):
            while not self.release.wait(0.05) and not stop.is_set():
                pass  # a unit of work that lasts until the test releases it (or a stop request)
            stop.check()
            record = {"phase": "consolidate", "round": 0, "step": step, "loss": 1.0 / (step + 1),
                      "reverse_kl": 0.5 / (step + 1), "topk_mass": 0.99}
            self.metrics.append(record)
            on_event(MetricsRecorded("consolidate", record))
            on_event(Progress("consolidate", step + 1, 3))
        on_event(StageFinished("consolidate", 1.0))

    def experience(self, name):
        return list(self.items)

    def set_item(self, name, item, enabled, text):
        for i, it in enumerate(self.items):
            if it is item or (it.text == item.text and it.run == item.run):
                self.items[i] = ItemView(it.round, it.run, it.step, text, it.episode_id, it.source, enabled,
                                         it.edited or text != it.text, it.new_this_round)

    def save_human_game(self, name, game, new_config=None):
        name = name or "play-new"
        episode = episode_from_game(game)
        self.human_games.append((name, episode))
        return name, episode
