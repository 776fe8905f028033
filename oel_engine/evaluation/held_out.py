"""Evaluation: pass rate and friends on the held-out seeds, repeated over sampling seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..config import GameConfig, eval_seeds
from ..events import EventSink, StopFlag, ignore
from ..metrics import EPISODE_METRICS, mean_sd
from ..play.policies import Policy
from ..play.rollout import play_episodes
from ..play.trajectory import Episode

METRICS = EPISODE_METRICS


def episode_metrics(episodes: list[Episode]) -> dict:
    """pass rate (reward exactly 1.0), share of turns with a move the game accepted,
    mean response tokens per turn, mean turns per game."""
    turns = [t for e in episodes for t in e.turns]
    n = max(1, len(episodes))
    return {
        "episodes": len(episodes),
        "pass_rate": sum(e.success for e in episodes) / n,
        "legal_action_rate": sum(t.valid for t in turns) / max(1, len(turns)),
        "mean_response_tokens": sum(t.response_tokens for t in turns) / max(1, len(turns)),
        "mean_turns": len(turns) / n,
    }


@dataclass
class EvalResult:
    game: str
    policy: str
    episodes: int
    samples: list[dict] = field(default_factory=list)  # one episode_metrics dict per sampling seed

    def mean(self, metric: str) -> float:
        return mean_sd(s[metric] for s in self.samples)[0]

    def spread(self, metric: str) -> float:
        """Sample standard deviation over sampling seeds (0 with one sample)."""
        return mean_sd(s[metric] for s in self.samples)[1]

    def summary(self) -> dict:
        out = {"game": self.game, "policy": self.policy, "episodes": self.episodes, "samples": len(self.samples)}
        for m in METRICS:
            out[m] = round(self.mean(m), 4)
            out[f"{m}_std"] = round(self.spread(m), 4)
        return out


def evaluate(
    game_config: GameConfig,
    make_policy: Callable[[int], Policy],
    episodes: int,
    samples: int = 1,
    *,
    experience: str | None = None,
    experience_name: str | None = None,
    round_index: int = 0,
    concurrent: int = 32,
    on_event: EventSink = ignore,
    on_episode: Callable[[Episode], None] | None = None,
    stop: StopFlag | None = None,
) -> tuple[EvalResult, list[Episode]]:
    """Play the first `episodes` held-out seeds `samples` times (sampling seeds 0..samples-1)."""
    seeds = eval_seeds(episodes)
    result, played = None, []
    for sample in range(samples):
        policy = make_policy(sample)
        if result is None:
            result = EvalResult(game_config.name, policy.info.kind, episodes)
        eps = play_episodes(
            game_config, seeds, policy,
            experience=experience, experience_name=experience_name, round_index=round_index,
            stage="eval", concurrent=concurrent, on_event=on_event, on_episode=on_episode, stop=stop,
        )
        result.samples.append(episode_metrics(eps))
        played.extend(eps)
    return result, played
