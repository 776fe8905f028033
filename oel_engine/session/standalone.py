"""The CLI's work outside rounds: playing and evaluating a policy, the instruction probe, judging answers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..config import GameConfig, ModelConfig, SamplingConfig
from ..errors import OelError
from ..events import EventSink, StopFlag, ignore
from ..games import make_game
from ..play.policies import RandomPolicy
from ..play.trajectory import Episode
from .views import Status
from .views import quiet as _quiet


class StandaloneWork:
    def play(self, game: GameConfig, seeds: list[int], policy, run: str | None, *, concurrent: int = 32,
             on_event: EventSink = ignore, stop: StopFlag | None = None) -> tuple[str, list[Episode], bool]:
        """Play one game per seed, saving each finished game to run `run` (a plain run, made if
        new; default a new play-<time> run) as it ends. Returns the run's name, the saved games
        and whether a stop request cut the work short."""
        from ..errors import Stopped
        from ..play.rollout import play_episodes
        from ..run.store import new_run_name

        run = run or new_run_name("play")
        saved: list[Episode] = []
        with self.games_session(run, game, policy.info.model or policy.info.kind, "playing games") as session:

            def save(episode: Episode) -> None:
                session.add_games([episode])
                saved.append(episode)

            try:
                play_episodes(game, seeds, policy, concurrent=concurrent, on_event=on_event, on_episode=save, stop=stop)
            except Stopped:
                return run, saved, True
        return run, saved, False

    def _keep_games(self, run: str | None, game: GameConfig, model: str, games: list[Episode]) -> str:
        """Save `games` to run `run` (default: a new eval-<time> run) after the work that played
        them failed; returns a line saying where (or why they could not be kept)."""
        from ..run.store import new_run_name

        run = run or new_run_name("eval")
        try:
            with self.games_session(run, game, model, "keeping games") as session:
                session.add_games(games)
                path = session.store.path
        except Exception as error:  # the failure that brought us here may be the disk itself
            return f"the {len(games)} games played before it could not be saved either ({error})"
        return f"the {len(games)} games played before it are saved in run '{run}' ({path}; oel-tui Replay shows them)"

    @staticmethod
    def check_game(config: GameConfig) -> None:
        """Refuse sizes the game cannot build, with one clear line."""
        make_game(config)

    @staticmethod
    def episode_metrics(episodes: list[Episode]) -> dict:
        from ..evaluation.held_out import episode_metrics

        return episode_metrics(episodes)

    @staticmethod
    def read_experience_file(path: Path) -> str:
        """An experience file's text, checked (one clear line if it holds no items)."""
        from ..experience.items import read_experience

        return read_experience(path)

    def evaluate(self, game: GameConfig, policy, episodes: int, samples: int, *, experience: str | None = None,
                 experience_name: str | None = None, run: str | None = None, concurrent: int = 32,
                 on_event: EventSink = ignore, stop: StopFlag | None = None) -> dict:
        """Held-out evaluation (mean and spread over samples); with `run`, its games and summary
        are saved there. A stopped evaluation raises Stopped and records nothing."""
        from ..errors import Stopped
        from ..evaluation.held_out import evaluate
        from ..metrics import EvalKind, EvalSummary

        finished: list[Episode] = []
        try:
            result, played = evaluate(game, policy, episodes, samples, experience=experience,
                                      experience_name=experience_name, concurrent=concurrent, on_event=on_event,
                                      stop=stop, on_sample=finished.extend)
            summary = {**result.summary(), **self.probe_held_out(game, episodes, experience, stop),
                       "experience": experience_name}
        except Stopped:
            raise
        except Exception as exc:  # games played before a late failure are kept, and the error says where
            if finished:
                exc.add_note(self._keep_games(run, game, policy.info.model or policy.info.kind, finished))
            raise
        if run:
            with self.games_session(run, game, summary["policy"], "saving an evaluation") as session:
                session.add_games(played)
                extra = {k: summary[k] for k in ("game", "policy", "experience")}
                record = EvalSummary(kind=EvalKind.STANDALONE, **{k: v for k, v in summary.items()
                                                                 if k in EvalSummary.__dataclass_fields__})
                record.extra = extra
                session.add_metrics(record)
            summary["run"] = run
        return summary

    def instruction_probe(self, model: ModelConfig, samples: int, max_new_tokens: int, stop: StopFlag,
                          on_batch=None, status: Status = _quiet) -> dict:
        """The offline instruction-following probe on `model` (thinking off): prompt-level strict
        accuracy per sampling seed 0..samples-1, with its mean and spread."""
        from ..evaluation.instructions.probe import (
            OOD_SAMPLING,
            load_prompts,
            run_probe,
        )
        from ..metrics import mean_sd

        if samples < 1 or max_new_tokens < 1:
            raise OelError("--samples and --max-new-tokens must be at least 1")
        prompts = load_prompts()
        self.load_model(model, status)
        scores = run_probe(self.lm, list(range(samples)), replace(OOD_SAMPLING, max_new_tokens=max_new_tokens),
                           prompts, stop, on_batch=on_batch)
        accuracy, spread = mean_sd(s.accuracy for s in scores)
        return {"model": self.lm.name, "adapter": model.adapter, "prompts": len(prompts), "samples": samples,
                "accuracy": round(accuracy, 4), "accuracy_std": round(spread, 4),
                "instruction_accuracy": round(mean_sd(s.instruction_accuracy for s in scores)[0], 4),
                "per_seed": [round(s.accuracy, 4) for s in scores],
                "mean_response_tokens": round(mean_sd(s.mean_response_tokens for s in scores)[0], 1)}

    @staticmethod
    def score_answers(path: Path, on_verdict=lambda verdict: None) -> dict:
        """Judge answers given in a JSON-lines file (no model): `on_verdict` gets each line's
        verdict as it is judged; returns the totals."""
        from ..evaluation.instructions.score_file import score_lines, summary

        results = []
        for result in score_lines(path):
            results.append(result)
            on_verdict(result)
        return summary(results)

    def make_policy(self, kind: str, sampling: SamplingConfig, seed: int, batch_size: int = 32,
                    ask=None, stop: StopFlag | None = None):
        """A policy for `oel play`/`oel eval`: "random", "model" (the loaded model) or "human"
        (`ask(request) -> answer text`)."""
        from ..play.policies import HumanPolicy, ModelPolicy

        if kind == "human":
            return HumanPolicy(ask)
        if kind == "random" or self.lm is None:
            return RandomPolicy(seed)
        policy = ModelPolicy(self.lm, sampling, seed=seed, batch_size=batch_size)
        if stop is not None:
            policy.should_stop = stop.is_set
        return policy
