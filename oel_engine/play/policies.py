"""Policies behind one interface: each gets a batch of turn requests and answers each with text.

A model, a random legal-move agent, a human (moves arrive through a callback, so the CLI and
the TUI drive it the same way) and a scripted list of moves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Hashable, Protocol, Sequence

from ..config import SamplingConfig
from ..games.base import Board
from .trajectory import PolicyInfo


@dataclass
class TurnRequest:
    key: Hashable  # identifies the game (for KV reuse across its turns)
    prompt: list[dict]  # chat messages
    board: Board
    legal_moves: list[str]
    turn: int
    sampling_seed: int | None = None  # a per-game random stream, so a game replays the same after a resume


@dataclass
class TurnReply:
    text: str
    response_tokens: int = 0
    prompt_tokens: int = 0


class Policy(Protocol):
    info: PolicyInfo

    def act(self, requests: Sequence[TurnRequest]) -> list[TurnReply]: ...

    def episode_done(self, key: Hashable) -> None: ...


class RandomPolicy:
    """A uniformly random legal move each turn (its own RNG, never the global one)."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self.info = PolicyInfo("random")

    def act(self, requests):
        return [TurnReply(f"[{self.rng.choice(r.legal_moves or ['up'])}]") for r in requests]

    def episode_done(self, key) -> None:
        pass


class ScriptedPolicy:
    """Plays given responses in order; `script` maps turn index to text (a list or a function)."""

    def __init__(self, script: Sequence[str] | Callable[[TurnRequest], str]):
        self.script = script
        self.info = PolicyInfo("scripted")

    def act(self, requests):
        if callable(self.script):
            return [TurnReply(self.script(r)) for r in requests]
        return [TurnReply(self.script[r.turn] if r.turn < len(self.script) else "") for r in requests]

    def episode_done(self, key) -> None:
        pass


class HumanPolicy:
    """Asks `ask(request)` for each move: a CLI prompt, or a TUI key press through a queue."""

    def __init__(self, ask: Callable[[TurnRequest], str]):
        self.ask = ask
        self.info = PolicyInfo("human")

    def act(self, requests):
        return [TurnReply(self._normalise(self.ask(r))) for r in requests]

    @staticmethod
    def _normalise(move: str) -> str:
        move = (move or "").strip()
        return move if move.startswith("[") else f"[{move}]"

    def episode_done(self, key) -> None:
        pass


class ModelPolicy:
    """A language model answering each turn; all requests of a turn go in one batch."""

    def __init__(self, lm, sampling: SamplingConfig, seed: int = 0, batch_size: int | None = None):
        import torch

        self.lm = lm
        self.sampling = sampling
        self.batch_size = batch_size or lm.config.batch_size
        self.torch_generator = torch.Generator(device=lm.device).manual_seed(seed)
        self.info = PolicyInfo("model", lm.name, lm.config.adapter)
        self.should_stop: Callable[[], bool] | None = None

        self._game_generators: dict = {}

    def _generators(self, chunk):
        if any(r.sampling_seed is None for r in chunk):
            return self.torch_generator
        import torch

        out = []
        for r in chunk:
            if r.key not in self._game_generators:
                self._game_generators[r.key] = torch.Generator(device=self.lm.device).manual_seed(r.sampling_seed)
            out.append(self._game_generators[r.key])
        return out

    def act(self, requests):
        replies = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            outs = self.lm.generate(
                [r.prompt for r in chunk],
                self.sampling,
                keys=[r.key for r in chunk],
                generator=self._generators(chunk),
                should_stop=self.should_stop,
            )
            replies.extend(TurnReply(o.text, len(o.token_ids), o.prompt_tokens) for o in outs)
        return replies

    def episode_done(self, key) -> None:
        self.lm.generator.forget(key)
        self._game_generators.pop(key, None)
