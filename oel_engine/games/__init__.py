"""Games: one interface (`Game`) over TextArena's Frozen Lake and Sokoban."""

from __future__ import annotations

from ..config import GAMES, GameConfig
from ..errors import OelError
from .base import MOVES, Board, Game, Message, StepResult
from .frozenlake import FrozenLake
from .sokoban import Sokoban


def make_game(config: GameConfig) -> Game:
    """A fresh game for `config`; raises OelError on an unknown game or impossible size."""
    try:
        if config.name == "frozenlake":
            return FrozenLake(config.size, config.holes, config.max_turns, config.objective)
        if config.name == "sokoban":
            return Sokoban(config.room, config.boxes, config.max_turns, config.objective)
    except ValueError as exc:
        raise OelError(str(exc)) from None
    raise OelError(f"unknown game '{config.name}': choose one of {', '.join(GAMES)}")


__all__ = ["Board", "Game", "Message", "StepResult", "MOVES", "FrozenLake", "Sokoban", "make_game"]
