"""The move-probability probe: what the model would answer on a game state, read in one pass.

The turn prompt (chat template applied) is followed by the opening "[" of the answer, and one
forward pass gives the next-token distribution; the probe keeps the four move tokens ("up",
"down", "left", "right") and renormalises them to one (a forced choice). `mass` is how much of
the whole distribution those four tokens held before renormalising, so a model that would
rather write something else shows it. The student reads the plain prompt, the teacher the same
prompt with the experience block inserted where play puts it.

`good_move_prob` is the probability on the good moves (those that start a shortest safe path to
a win, found by search) averaged over the start states of the held-out maps.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..config import GameConfig, eval_seeds
from ..games import MOVES, Board, make_game
from ..games.solve import good_moves
from ..play.prompts import insert_experience, turn_messages

ANSWER_OPENING = "["


@dataclass
class ProbeState:
    """One game state to probe: the student's prompt, the board and its good moves."""

    prompt: list[dict]
    board: Board
    legal: list[str]
    good: list[str]
    seed: int | None = None


@dataclass
class MoveProbs:
    probs: dict[str, float]  # forced choice over MOVES; sums to one
    mass: float = 1.0  # share of the next-token probability the move tokens held

    def on(self, moves: Sequence[str]) -> float:
        return sum(self.probs.get(m, 0.0) for m in moves)


@dataclass
class ProbeResult:
    good_move_prob: float  # mean over states of the probability on good moves
    good_move_prob_se: float  # its standard error over states
    move_mass: float  # mean share of the distribution on move tokens
    states: int
    per_state: list[MoveProbs] = field(default_factory=list)

    def summary(self) -> dict:
        return {"good_move_prob": round(self.good_move_prob, 4), "good_move_prob_se": round(self.good_move_prob_se, 4),
                "move_mass": round(self.move_mass, 4), "probe_states": self.states}


def state_of(game) -> ProbeState:
    board = game.board()
    return ProbeState(turn_messages(game.player_description, game.messages), board, game.legal_moves(),
                      good_moves(board), game.seed)


def start_states(game_config: GameConfig, episodes: int, held_out: str = "ours") -> list[ProbeState]:
    """The held-out maps' start states that can be won (a map with no way to win has no good move)."""
    states = []
    for seed in eval_seeds(episodes, held_out):
        game = make_game(game_config)
        game.reset(seed)
        state = state_of(game)
        if state.good:
            states.append(state)
    return states


def summarise(states: Sequence[ProbeState], probs: Sequence[MoveProbs]) -> ProbeResult:
    values = [p.on(s.good) for s, p in zip(states, probs)]
    if not values:
        return ProbeResult(0.0, 0.0, 0.0, 0, [])
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return ProbeResult(statistics.fmean(values), se, statistics.fmean(p.mass for p in probs), len(values), list(probs))


def uniform_legal(states: Sequence[ProbeState]) -> list[MoveProbs]:
    """What a random legal-move player 'puts' on each move: the baseline row of the probe."""
    return [MoveProbs({m: (1 / len(s.legal) if m in s.legal else 0.0) for m in MOVES}) for s in states]


def held_out_probe(lm, states: Sequence[ProbeState], experience: str | None = None, stop=None) -> ProbeResult:
    """The probe on `states` with `experience` in the prompt: the loaded model, or a random
    legal-move player when `lm` is None. A stop request raises Stopped (a cut probe is no result)."""
    if lm is None:
        return summarise(states, uniform_legal(states))
    result = MoveProbe(lm, lm.config.batch_size).states(states, experience,
                                                        should_stop=stop.is_set if stop is not None else None)
    if stop is not None:
        stop.check()
    return result


class MoveProbe:
    """Reads move probabilities from a loaded LanguageModel."""

    def __init__(self, lm, batch_size: int = 8):
        self.lm = lm
        self.batch_size = max(1, batch_size)
        self._opening, self._move_ids = self._tokens()

    def _tokens(self) -> tuple[list[int], list[int]]:
        """The tokens of the answer opening, and one distinct token per move after it."""
        encode = lambda s: self.lm.tokenizer(s, add_special_tokens=False)["input_ids"]
        context = self.lm.chat_text([{"role": "user", "content": "Move."}])
        base = encode(context)
        tails = []
        for move in MOVES:
            full = encode(context + ANSWER_OPENING + move)
            if full[: len(base)] != base:
                raise ValueError("the tokenizer merges the answer opening into the prompt; the probe cannot read it")
            tails.append(full[len(base):])
        shared = 0  # tokens every continuation shares (normally the "[" alone)
        while all(len(t) > shared + 1 and t[shared] == tails[0][shared] for t in tails):
            shared += 1
        ids = [t[shared] for t in tails]
        if len(set(ids)) != len(ids):
            raise ValueError("two moves begin with the same token; the probe cannot tell them apart")
        return tails[0][:shared], ids

    def read(self, prompts: Sequence[list[dict]], should_stop: Callable[[], bool] | None = None) -> list[MoveProbs]:
        """One forward pass per distinct prompt (held-out maps repeat layouts), batched; the
        prompts' shared preamble is computed once (the generator's root cache)."""
        import torch

        sequences = [tuple(self.lm.encode_chat(p) + self._opening) for p in prompts]
        distinct = list(dict.fromkeys(sequences))
        move_ids = torch.tensor(self._move_ids)
        read: dict[tuple, MoveProbs] = {}
        for start in range(0, len(distinct), self.batch_size):
            if should_stop is not None and should_stop():
                break
            chunk = distinct[start:start + self.batch_size]
            full = torch.softmax(self.lm.generator.next_token_logits(chunk), dim=-1).cpu()
            on_moves = full[:, move_ids]
            masses = on_moves.sum(-1)
            chosen = on_moves / masses.clamp_min(1e-30).unsqueeze(-1)
            for seq, row, mass in zip(chunk, chosen.tolist(), masses.tolist()):
                read[seq] = MoveProbs(dict(zip(MOVES, row)), mass)
        return [read[seq] for seq in sequences if seq in read]

    def states(self, states: Sequence[ProbeState], experience: str | None = None,
               should_stop: Callable[[], bool] | None = None) -> ProbeResult:
        """Student (no experience) or teacher (the experience inserted) on the given states."""
        prompts = [insert_experience(s.prompt, experience) for s in states]
        return summarise(states, self.read(prompts, should_stop))
