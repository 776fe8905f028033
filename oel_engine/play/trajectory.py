"""Plain data for played games: one Episode per game, one Turn per model (or human) call."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone


@dataclass
class PolicyInfo:
    """Who played: `kind` is model, random, human or scripted; model and adapter name the weights."""

    kind: str
    model: str | None = None
    adapter: str | None = None


@dataclass
class Turn:
    index: int
    prompt: list[dict]  # chat messages the policy saw (no experience unless in-context play)
    response: str
    action: str | None  # parsed move, None when the response held none
    valid: bool  # the environment accepted the move
    feedback: str  # the environment's answer
    response_tokens: int = 0
    prompt_tokens: int = 0
    board: dict | None = None  # the structured board the move was made on (Board.to_dict); None in older runs
    board_after: dict | None = None  # the board after the game applied the move


@dataclass
class Outcome:
    reward: float
    success: bool  # reward exactly 1.0
    reason: str


@dataclass
class Episode:
    game: str
    game_options: dict
    seed: int
    policy: PolicyInfo
    turns: list[Turn] = field(default_factory=list)
    outcome: Outcome | None = None
    round: int = 0
    experience: str | None = None  # name of the experience file in the prompt, if any
    stage: str = "play"  # play | collect | extract | eval
    tags: dict = field(default_factory=dict)  # stage details: extraction run/step, consolidation step
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def success(self) -> bool:
        return bool(self.outcome and self.outcome.success)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Episode":
        d = dict(d)
        d["policy"] = PolicyInfo(**d["policy"])
        d["turns"] = [Turn(**t) for t in d.get("turns", [])]
        d["outcome"] = Outcome(**d["outcome"]) if d.get("outcome") else None
        return cls(**d)
