"""One game interface over TextArena's Frozen Lake and Sokoban.

`reset(seed)` gives what the model reads (the environment's messages) and a structured board
for drawing; `step(response)` parses the action, applies it, and reports feedback and outcome.
The wrapper owns the turn cap (every model call counts, invalid ones included) and keeps
TextArena's rule that one invalid move is forgiven with a warning and a second in a row ends
the game.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field

from .actions import parse_action

MOVES = ("up", "down", "left", "right")
DELTAS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


@dataclass
class Board:
    """What is where, for drawing. Rows of terrain plus the movable things.

    terrain codes: '.' floor/ice, 'H' hole, 'G' goal, '#' wall, 'O' box target.
    """

    game: str
    terrain: list[str]
    player: tuple[int, int]
    boxes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.terrain)

    @property
    def cols(self) -> int:
        return len(self.terrain[0]) if self.terrain else 0

    def to_dict(self) -> dict:
        return {"game": self.game, "terrain": self.terrain, "player": list(self.player), "boxes": [list(b) for b in self.boxes]}

    @classmethod
    def from_dict(cls, d: dict) -> "Board":
        return cls(d["game"], list(d["terrain"]), tuple(d["player"]), [tuple(b) for b in d.get("boxes", [])])


@dataclass
class Message:
    """One environment message: who sent it ('game' or 'player') and its kind."""

    sender: str
    kind: str  # rules | board | action | feedback | warning
    text: str


@dataclass
class StepResult:
    action: str | None  # parsed move, None when the response held none
    valid: bool  # the environment accepted the move
    feedback: str  # the environment's new messages, as text
    done: bool
    reward: float | None  # set when done
    reason: str  # set when done
    board: Board


@contextmanager
def isolated_global_random():
    """TextArena reseeds Python's global `random` on reset; keep the caller's stream intact."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


class Game(ABC):
    """A game instance; call reset(seed) before step()."""

    name: str = ""
    player_description: str = ""
    # The reference's turn prompt states the goal (GameConfig.objective); our own wording.
    OBJECTIVE = "Pick the move that wins in the fewest steps; you move one step per turn."

    def __init__(self, max_turns: int = 5, objective: bool = False):
        self.max_turns = max_turns
        if objective:  # an instance attribute: every prompt built from this game carries it
            self.player_description = f"{type(self).player_description} {self.OBJECTIVE}"
        self.messages: list[Message] = []
        self.turns = 0
        self.done = False
        self.reward: float | None = None
        self.reason = ""
        self.seed: int | None = None

    # -- provided by each game ------------------------------------------------------------

    @abstractmethod
    def _make_env(self): ...

    @abstractmethod
    def board(self) -> Board: ...

    @abstractmethod
    def legal_moves(self) -> list[str]:
        """Moves the environment would accept now (not into a wall, not pushing a blocked box)."""

    @abstractmethod
    def _progress(self) -> float:
        """The environment's partial reward for stopping now (below 1.0 unless won)."""

    # -- the common interface ---------------------------------------------------------------

    def reset(self, seed: int) -> list[Message]:
        self.env = self._make_env()
        with isolated_global_random():
            self.env.reset(num_players=1, seed=seed)
        self.seed = seed
        self.messages, self.turns, self.done, self.reward, self.reason = [], 0, False, None, ""
        new = self._drain()
        self.messages.extend(new)
        return new

    def step(self, response: str) -> StepResult:
        if self.done:
            raise RuntimeError("the game is over; reset it first")
        action = parse_action(response)
        # Hand the environment only the parsed move so its own (first-match) parser agrees with
        # ours (last match); a response without a move becomes an explicit invalid submission.
        submitted = f"[{action}]" if action else "(no valid action)"
        with isolated_global_random():
            done, _ = self.env.step(submitted)
        new = self._drain()
        self.messages.extend(new)
        self.turns += 1
        valid = action is not None and not any(m.kind == "warning" for m in new)
        if done:
            rewards, info = self.env.close()
            self.reward = float((rewards or {}).get(0, 0.0))
            self.reason = str(info.get(0, {}).get("reason", "")) if isinstance(info, dict) else ""
            valid = valid and not self.reason.startswith("Invalid Move")
            self.done = True
        elif self.turns >= self.max_turns:
            self.done = True
            self.reward = min(self._progress(), 0.99)
            self.reason = f"Turn limit reached ({self.max_turns} turns) without finishing."
        return StepResult(
            action=action,
            valid=valid,
            feedback="\n".join(m.text for m in new if m.sender == "game"),
            done=self.done,
            reward=self.reward,
            reason=self.reason,
            board=self.board(),
        )

    @property
    def success(self) -> bool:
        return self.done and self.reward == 1.0

    def _drain(self) -> list[Message]:
        _, observation = self.env.get_observation()
        out = []
        for sender_id, text, kind in observation:
            kind_name = getattr(kind, "name", str(kind))
            out.append(Message("player" if sender_id == 0 else "game", _KINDS.get(kind_name, "feedback"), text))
        return out


_KINDS = {
    "PROMPT": "rules",
    "GAME_BOARD": "board",
    "PLAYER_ACTION": "action",
    "GAME_ADMIN": "warning",
    "GAME_ACTION_DESCRIPTION": "feedback",
    "GAME_MESSAGE": "feedback",
}
