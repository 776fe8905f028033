"""Held-out evaluation, one path for a round's evaluations and `oel eval`: pass rate and friends
on the held-out maps, repeated over sampling seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..config import GameConfig, eval_seeds
from ..events import EventSink, StopFlag, ignore
from ..metrics import EPISODE_METRICS, mean_sd
from ..play.policies import Policy
from ..play.rollout import games_over_maps, play_episodes
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


def play_samples(
    game_config: GameConfig,
    maps: Sequence[int],
    policy: Policy,
    samples: Sequence[tuple[int, str | None]],
    on_sample: Callable[[int, list[Episode]], None],
    *,
    round_index: int = 0,
    stage: str = "eval",
    experience_name: str | None = None,
    concurrent: int = 32,
    on_event: EventSink = ignore,
    stop: StopFlag | None = None,
) -> None:
    """The one held-out evaluation: every sample (its sampling seed, its experience or None)
    plays every map, all samples as one continuous batch (slots refill as games end, so the
    batch stays full through the last sample's stragglers). `on_sample(i, games in map order)`
    runs as soon as sample i's last game ends, so a stop loses only the samples being played;
    a stop request is also honoured between two samples."""
    if not samples:
        return
    seeds, experiences, streams = games_over_maps(maps, samples)
    finished: dict[int, dict[int, Episode]] = {i: {} for i in range(len(samples))}

    def game_done(index: int, episode: Episode) -> None:
        sample = index // len(maps)
        finished[sample][index % len(maps)] = episode
        if len(finished[sample]) == len(maps):
            on_sample(sample, [finished[sample][m] for m in range(len(maps))])
            if stop is not None and any(len(games) < len(maps) for games in finished.values()):
                stop.check()

    play_episodes(game_config, seeds, policy, experiences=experiences, experience_name=experience_name,
                  round_index=round_index, stage=stage, concurrent=concurrent, on_event=on_event,
                  on_game_done=game_done, stop=stop, sampling_seeds=streams)


def evaluate(
    game_config: GameConfig,
    policy: Policy,
    episodes: int,
    samples: int = 1,
    *,
    experience: str | None = None,
    experience_name: str | None = None,
    concurrent: int = 32,
    on_event: EventSink = ignore,
    stop: StopFlag | None = None,
    on_sample: Callable[[list[Episode]], None] = lambda games: None,
) -> tuple[EvalResult, list[Episode]]:
    """`oel eval`: the first `episodes` held-out maps, `samples` times (sampling seeds
    0..samples-1), through `play_samples` as a round's evaluation plays them. `on_sample` gets
    each sample's games as soon as they are all played (kept by the caller if a later step fails)."""
    result = EvalResult(game_config.name, policy.info.kind, episodes)
    by_sample: dict[int, list[Episode]] = {}

    def sample_done(sample: int, games: list[Episode]) -> None:
        by_sample[sample] = games
        on_sample(games)

    play_samples(game_config, eval_seeds(episodes), policy, [(sample, experience) for sample in range(samples)],
                 sample_done, experience_name=experience_name, concurrent=concurrent, on_event=on_event, stop=stop)
    result.samples = [episode_metrics(by_sample[s]) for s in range(samples)]
    return result, [e for s in range(samples) for e in by_sample[s]]
