"""Playing games: many games at once, one policy call per turn for all unfinished games.

Slots are refilled as games end (turn-synchronous continuous batching), so a batch stays full
while seeds remain. Completed episodes are handed to `on_episode` as they finish, so a caller
can save them before a stop request ends the work between two turns.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Callable, Sequence

from ..config import GameConfig
from ..events import (
    EpisodeFinished,
    EventSink,
    Progress,
    StageFinished,
    StageStarted,
    StopFlag,
    TurnPlayed,
    ignore,
)
from ..games import Game, make_game
from .policies import Policy, TurnRequest
from .prompts import turn_messages
from .trajectory import Episode, Outcome, PolicyInfo, Turn


def game_options(config: GameConfig) -> dict:
    opts = asdict(config)
    opts.pop("name")
    return opts


def game_sampling_seed(sampling_seed: int, map_seed: int) -> int:
    return (sampling_seed * 1_000_003 + map_seed) % (2**63 - 1)


def games_over_maps(maps: Sequence[int], groups: Sequence[tuple[int, str | None]]):
    """One batch for several groups that each play every map (evaluation samples, curve runs):
    the seeds, each game's experience and its random stream (from its group's sampling seed and
    the map, as `sampling_seed` would give it), group after group; for `play_episodes`."""
    seeds, experiences, streams = [], [], []
    for sampling_seed, experience in groups:
        seeds += list(maps)
        experiences += [experience] * len(maps)
        streams += [game_sampling_seed(sampling_seed, m) for m in maps]
    return seeds, experiences, streams


class _Slot:
    def __init__(self, index: int, seed: int, game: Game, episode: Episode):
        self.index, self.seed, self.game, self.episode = index, seed, game, episode


def play_episodes(
    game_config: GameConfig,
    seeds: Sequence[int],
    policy: Policy,
    *,
    experience: str | None = None,
    experiences: Sequence[str | None] | None = None,
    experience_name: str | None = None,
    round_index: int = 0,
    stage: str = "play",
    concurrent: int = 32,
    sampling_seed: int | None = None,
    sampling_seeds: Sequence[int] | None = None,
    on_event: EventSink = ignore,
    on_episode: Callable[[Episode], None] | None = None,
    on_game_done: Callable[[int, Episode], None] | None = None,
    stop: StopFlag | None = None,
) -> list[Episode]:
    """Play one game per seed; returns the episodes in seed order. Raises Stopped if asked to stop.

    With `sampling_seed`, each game draws from its own random stream (derived from that seed and
    the map seed), so any subset of the seeds replays exactly as in a full run (resume).
    `sampling_seeds` gives each game its stream directly (one per seed; for games that share
    a map and must differ only in sampling). `experiences` gives each game its own experience
    (one per seed), so games with different experiences still share one batch. `on_game_done`
    gets each finished game with its index in `seeds`.
    """
    if sampling_seeds is not None and len(sampling_seeds) != len(seeds):
        raise ValueError("sampling_seeds needs one seed per game")
    if experiences is not None and len(experiences) != len(seeds):
        raise ValueError("experiences needs one experience per game")
    started = time.perf_counter()
    total = len(seeds)
    on_event(StageStarted(stage, total, game_config.label()))
    pending = list(enumerate(seeds))[::-1]
    active: list[_Slot] = []
    finished: dict[int, Episode] = {}
    key_prefix = f"{stage}-{id(pending)}"
    while pending or active:
        if stop is not None:
            stop.check()
        while pending and len(active) < concurrent:
            index, seed = pending.pop()
            game = make_game(game_config)
            game.reset(seed)
            episode = Episode(game_config.name, game_options(game_config), seed, policy.info,
                              round=round_index, experience=experience_name)
            active.append(_Slot(index, seed, game, episode))
        requests = [
            TurnRequest(
                key=(key_prefix, slot.index),
                prompt=turn_messages(slot.game.player_description, slot.game.messages,
                                     experiences[slot.index] if experiences is not None else experience),
                board=slot.game.board(),
                legal_moves=slot.game.legal_moves(),
                turn=slot.game.turns,
                sampling_seed=(sampling_seeds[slot.index] if sampling_seeds is not None
                               else None if sampling_seed is None else game_sampling_seed(sampling_seed, slot.seed)),
            )
            for slot in active
        ]
        replies = policy.act(requests)
        if stop is not None:
            stop.check()  # a reply cut short by a stop request is not a real move
        still_active = []
        for slot, request, reply in zip(active, requests, replies):
            result = slot.game.step(reply.text)
            turn = Turn(
                index=request.turn,
                prompt=request.prompt,
                response=reply.text,
                action=result.action,
                valid=result.valid,
                feedback=result.feedback,
                response_tokens=reply.response_tokens,
                prompt_tokens=reply.prompt_tokens,
                board=request.board.to_dict(),
                board_after=result.board.to_dict(),
            )
            slot.episode.turns.append(turn)
            on_event(TurnPlayed(stage, slot.index, turn, result.board))
            if result.done:
                slot.episode.outcome = Outcome(result.reward or 0.0, result.reward == 1.0, result.reason)
                policy.episode_done(request.key)
                finished[slot.index] = slot.episode
                if on_episode is not None:
                    on_episode(slot.episode)
                if on_game_done is not None:
                    on_game_done(slot.index, slot.episode)
                on_event(EpisodeFinished(stage, slot.episode))
                on_event(Progress(stage, len(finished), total, f"seed {slot.seed}: {result.reason}"))
            else:
                still_active.append(slot)
        active = still_active
    episodes = [finished[i] for i in range(total)]
    on_event(StageFinished(stage, time.perf_counter() - started, {"episodes": total}))
    return episodes


def episode_from_game(game) -> Episode:
    """A finished game played outside `play_episodes` (a person on the Play screen) as an
    Episode: each player move with the prompt a model would have seen at that point and the
    game's answer to it, read from the game's message history."""
    from ..games.actions import parse_action

    turns: list[Turn] = []
    for i, message in enumerate(game.messages):
        if message.sender == "player":
            prompt = turn_messages(game.player_description, game.messages[:i])
            turns.append(Turn(len(turns), prompt, message.text, parse_action(message.text), True, ""))
        elif turns:
            turn = turns[-1]
            turn.feedback = f"{turn.feedback}\n{message.text}".strip()
            if message.kind == "warning":
                turn.valid = False
    if turns and game.reason.startswith("Invalid Move"):
        turns[-1].valid = False
    options = {"size": getattr(game, "size", None), "holes": getattr(game, "holes", None),
               "room": getattr(game, "room", None), "boxes": getattr(game, "boxes", None), "max_turns": game.max_turns}
    options = {k: v for k, v in options.items() if v is not None}
    _add_boards(game, options, [m.text for m in game.messages if m.sender == "player"], turns)
    return Episode(game.name, options, game.seed, PolicyInfo("human"),
                   turns, Outcome(game.reward or 0.0, game.success, game.reason), stage="play", tags={"source": "human"})


def _add_boards(game, options: dict, moves: list[str], turns: list[Turn]) -> None:
    """The boards of a game played outside `play_episodes`: the same map replayed with the same
    moves (the games are deterministic given the seed)."""
    from ..config import GameConfig

    replay = make_game(GameConfig(name=game.name, **options))
    replay.reset(game.seed)
    for turn, move in zip(turns, moves):
        if replay.done:
            break
        turn.board = replay.board().to_dict()
        turn.board_after = replay.step(move).board.to_dict()
