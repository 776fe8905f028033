"""Frozen Lake (TextArena FrozenLake-v0): walk from the top-left to the goal without falling in."""

from __future__ import annotations

from textarena.envs.FrozenLake.env import FrozenLakeEnv

from .base import DELTAS, MOVES, Board, Game


class FrozenLake(Game):
    name = "frozenlake"
    player_description = (
        "You are 'P' on the grid. Give one move per turn as [up], [down], [left] or [right] "
        "(or [w], [a], [s], [d])."
    )

    def __init__(self, size: int = 3, holes: int = 2, max_turns: int = 5, objective: bool = False):
        super().__init__(max_turns, objective)
        if size < 2:
            raise ValueError("Frozen Lake needs a grid of at least 2x2")
        if not 0 <= holes <= size * size - 3:
            raise ValueError(f"a {size}x{size} Frozen Lake takes 0 to {size * size - 3} holes, not {holes}")
        self.size, self.holes = size, holes

    def _make_env(self):
        return FrozenLakeEnv(size=self.size, num_holes=self.holes, randomize_start_goal=False)

    def board(self) -> Board:
        gs = self.env.state.game_state
        terrain = ["".join({"H": "H", "G": "G"}.get(c, ".") for c in row) for row in gs["grid"]]
        return Board(self.name, terrain, tuple(gs["player_pos"]))

    def legal_moves(self) -> list[str]:
        r, c = self.env.state.game_state["player_pos"]
        return [m for m in MOVES if 0 <= r + DELTAS[m][0] < self.size and 0 <= c + DELTAS[m][1] < self.size]

    def _progress(self) -> float:
        return float(self.env._get_percentage_completion())
