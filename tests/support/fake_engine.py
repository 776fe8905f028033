"""A fake engine for the app's tests: real games, scripted agent, canned runs; no torch."""

from __future__ import annotations

import threading
from pathlib import Path

from oel_engine.config import LoopConfig
from oel_engine.events import MetricsRecorded, Progress, StageFinished, StageStarted
from oel_engine.games import make_game
from oel_engine.metrics import MetricsLog
from oel_engine.play.rollout import episode_from_game
from oel_engine.run.listing import RunSummary
from oel_tui.engine import AgentMove, ItemView, RunView


class FakeEngine:
    def __init__(self, saves: Path):
        self.saves = Path(saves)
        self.loaded = None
        self.items = [ItemView(0, 0, 1, "Holes end the game.", "e1", "model"),
                      ItemView(0, 1, 2, "The goal is bottom-right.", "e2", "human", new_this_round=True)]
        self.metrics = [{"phase": "eval", "round": 0, "kind": "base", "pass_rate": 0.1, "pass_rate_std": 0.01,
                         "legal_action_rate": 0.5, "mean_response_tokens": 40.0, "mean_turns": 2.0,
                         "good_move_prob": 0.12, "good_move_prob_se": 0.01}]
        self.release = threading.Event()  # a stage waits on it, so tests can act mid-job
        self.stage_calls = []
        self.human_games = []  # (run, episode) saved by save_human_game
        self.rounds_done = 0  # finished rounds: each is one more model in Play's picker
        self.created: list[str] = []  # runs made by open_run(name, config)
        self.listed = ["demo"]  # the runs the saves folder holds at start

    def runs(self):
        return [RunSummary(name, self.saves / name, "frozenlake", "fake", "today", 3, 1, 0.1)
                for name in [*self.listed, *self.created]]

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

    def agent_choices(self, run):
        from oel_engine.play.agents import choices_for

        return choices_for(run, self.rounds_done, bool(self.teacher_context(run))) if run else choices_for(None, 0, False)

    def agent_move(self, game, sampling, agent=None):
        """The base answers [right]; each finished round's model answers [down]; the teacher says so."""
        self.moves_by = getattr(self, "moves_by", []) + [agent]
        if agent is None or agent.rounds == 0 and not agent.teacher:
            return AgentMove("I go [right]", 4)
        return AgentMove(f"{'teacher' if agent.teacher else 'round'}: [down]", 3)

    def open_run(self, name, config):
        from oel_engine.errors import OelError
        from oel_engine.run.store import check_run_name

        if name not in (*self.listed, *self.created):
            if config is None:
                raise OelError(f"no run named '{name}' in {self.saves}: start one with `oel loop --run {name}`")
            self.created.append(check_run_name(name))
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
        if stage == "round":
            self.rounds_done += 1

    def prepare_teaching(self, name):
        from oel_engine.errors import OelError

        if not any(i.run == -1 and i.enabled for i in self.items):
            raise OelError("write a lesson first (n): a teaching round consolidates the run's lessons")
        return name, ""

    def experience(self, name):
        return list(self.items)

    def set_item(self, name, item, enabled, text):
        for i, it in enumerate(self.items):
            if it is item or (it.text == item.text and it.run == item.run):
                self.items[i] = ItemView(it.round, it.run, it.step, text, it.episode_id, it.source, enabled,
                                         it.edited or text != it.text, it.new_this_round)

    def add_item(self, name, text):
        from oel_engine.errors import OelError

        if not text.strip():
            raise OelError("an experience item cannot be empty")
        item = ItemView(0, -1, -1, " ".join(text.split()), "", "human", new_this_round=True)
        self.items.append(item)
        return item

    def teacher_context(self, name):
        return "\n".join(f"- EXPERIENCE ITEM: {i.text}" for i in self.items if i.enabled) or None

    def move_probs(self, game, experience, agent=None):
        """Canned probabilities that depend on the experience and on the model: each finished
        round moves 0.1 from up to down."""
        from oel_engine.evaluation.move_probe import MoveProbs
        from oel_engine.games.solve import good_moves

        gate = getattr(self, "probe_gate", None)
        if gate is not None:
            gate.wait(5)  # a test holds the probe here to act while it runs
        shift = 0.1 * (agent.rounds if agent is not None else 0)
        student = MoveProbs({"up": 0.4 - shift, "down": 0.1 + shift, "left": 0.4, "right": 0.1}, mass=0.5)
        teacher = MoveProbs({"up": 0.05, "down": 0.45, "left": 0.05, "right": 0.45}) if experience else None
        self.probed = getattr(self, "probed", 0) + 1
        return student, teacher, good_moves(game.board())

    def episodes(self, name):
        from oel_engine.session import EpisodeRow

        return [EpisodeRow(e.episode_id, e.round, e.stage, e.policy.kind, e.seed, e.success, len(e.turns))
                for _, e in self.saved_games()]

    def episode(self, name, episode_id):
        return next(e for _, e in self.saved_games() if e.episode_id == episode_id)

    def saved_games(self):
        """Two canned games (a scripted agent's, won and lost) plus the person's saved ones."""
        if not hasattr(self, "_canned"):
            from oel_engine.config import GameConfig
            from oel_engine.games.solve import good_moves
            from oel_engine.play.policies import ScriptedPolicy
            from oel_engine.play.rollout import play_episodes

            won = play_episodes(GameConfig(), [1_000_000], ScriptedPolicy(lambda r: f"I go [{good_moves(r.board)[0]}]"))
            lost = play_episodes(GameConfig(), [1_000_001], ScriptedPolicy(["[up]", "[up]"]))
            for e, i in zip(won + lost, ("g1", "g2")):
                e.episode_id, e.stage = i, "eval_base"
            self._canned = [("demo", e) for e in won + lost]
        return self._canned + self.human_games

    def save_human_game(self, name, game, new_config=None):
        name = name or "play-new"
        episode = episode_from_game(game)
        self.human_games.append((name, episode))
        return name, episode
