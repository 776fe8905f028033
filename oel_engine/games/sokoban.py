"""Sokoban (TextArena Sokoban-v0): push every box onto a target."""

from __future__ import annotations

from textarena.envs.Sokoban.env import SokobanEnv

from .base import Board, Game

# TextArena's room codes: 0 wall, 1 floor, 2 target, 3 box on target, 4 box, 5 player.
_TERRAIN = {0: "#", 1: ".", 2: "O"}


class Sokoban(Game):
    name = "sokoban"
    player_description = (
        "You are 'P' on the board. Give one move per turn as [up], [down], [left] or [right] "
        "(or [w], [a], [s], [d])."
    )

    def __init__(self, room: int = 6, boxes: int = 1, max_turns: int = 5, objective: bool = False):
        super().__init__(max_turns, objective)
        if room < 5:
            raise ValueError("a Sokoban room must be at least 5x5")
        if not 1 <= boxes <= 4:
            raise ValueError(f"Sokoban takes 1 to 4 boxes, not {boxes}")
        self.room, self.boxes = room, boxes

    def _make_env(self):
        return SokobanEnv(dim_room=(self.room, self.room), num_boxes=self.boxes)

    def board(self) -> Board:
        fixed, state = self.env.room_fixed, self.env.room_state
        terrain = ["".join(_TERRAIN.get(int(c), ".") for c in row) for row in fixed]
        boxes = [(int(r), int(c)) for r, c in zip(*((state == 3) | (state == 4)).nonzero())]
        r, c = self.env.player_position
        return Board(self.name, terrain, (int(r), int(c)), boxes)

    def legal_moves(self) -> list[str]:
        return [m for m in ("up", "down", "left", "right") if not self.env._would_collide_with_wall(m)]

    def _progress(self) -> float:
        return float(self.env._get_percentage_completion())
