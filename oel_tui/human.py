"""Saving a person's game as a trajectory (policy kind "human"), like any other episode."""

from __future__ import annotations

from pathlib import Path

from oel_engine.actions import parse_action
from oel_engine.prompts import turn_messages
from oel_engine.storage import RunStore
from oel_engine.trajectory import Episode, Outcome, PolicyInfo, Turn


def episode_from_game(game) -> Episode:
    """Rebuild a finished game's turns from its message history: each player move with the
    prompt a model would have seen at that point and the game's answer to it."""
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
    return Episode(game.name, {k: v for k, v in options.items() if v is not None}, game.seed, PolicyInfo("human"),
                   turns, Outcome(game.reward or 0.0, game.success, game.reason), stage="play", tags={"source": "human"})


def save_human_episode(saves: Path, run: str, game) -> Episode:
    """Saved in the run's current round, where that round's extraction reads it (step 0)."""
    from oel_engine.artifacts import RunArtifacts

    episode = episode_from_game(game)
    with RunStore(saves, run) as store:
        episode.round = RunArtifacts(store).rounds_done()
        store.add_episodes([episode])
    return episode
