"""The move-probability probe: what the model would answer on a game state, read in one pass.

After the turn prompt (chat template applied), the probe reads the probability that the answer
begins with each move's text, `[left]` and every other spelling the parser reads as left, over
the tokenizations a model may write (`answer_paths.py`: Qwen writes `[left` as one token and `[up`
as two), and renormalises the four moves to one (a forced choice). `mass` is the share of the
answers opening like a move (with "[", or a token such as Qwen's "[left") that go on to write
one, so a model that would rather write something else shows it. The answers' tokens follow the
prompts of a batch as a token tree, read in the prompts' forward pass and one more. The student
reads the plain prompt, the teacher the same prompt with the experience block inserted where
play puts it.

`good_move_prob` is the probability on the good moves (those that start a shortest safe path to
a win, found by search) averaged over the start states of the held-out maps.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..config import PROBE_SPELLINGS, GameConfig, eval_seeds
from ..games import MOVES, Board, make_game
from ..games.actions import move_spellings
from ..games.solve import good_moves
from ..play.prompts import insert_experience, turn_messages

ANSWER_OPENING = "["
# Spellings whose path, at its second token, holds less than this share of the probability of
# opening like a move in every prompt of a batch are not read further (`AnswerMap.worth_reading`).
# On the embedded model's 64 start states (2-core AVX2 EPYC, float32) 35-37 of 44 tree tokens
# stay: probabilities and mass move by less than 5e-5, the probe takes 10-20% less time.
SKIP_BELOW = 1e-5


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
    mass: float = 1.0  # share of the answers opening like a move ("[", or Qwen's "[left") that write one

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
                # significant digits, not decimals: a model that rarely closes a move keeps a mass above 0
                "move_mass": float(f"{self.move_mass:.4g}"), "probe_states": self.states}


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


def held_out_probe(lm, states: Sequence[ProbeState], experience: str | None = None, stop=None,
                   spellings: str = "all") -> ProbeResult:
    """The probe on `states` with `experience` in the prompt: the loaded model, or a random
    legal-move player when `lm` is None. A stop request raises Stopped (a cut probe is no result)."""
    if lm is None:
        return summarise(states, uniform_legal(states))
    result = MoveProbe(lm, lm.config.batch_size, spellings).states(states, experience,
                                                        should_stop=stop.is_set if stop is not None else None)
    if stop is not None:
        stop.check()
    return result


class MoveProbe:
    """Reads move probabilities from a loaded LanguageModel: for each move, the probability that
    the answer begins with one of its spellings (`answer_paths.py`), over any tokenization the
    model may use, as a forced choice among the moves (given that the answer writes one).

    `spellings` is `all` (every spelling the action parser reads, "]" included) or `words` (`[up`
    `[down` `[left` `[right`: the reading of runs made before 2026-12-07). The prompt is
    rendered without thinking: the probe reads the answer a thinking model gives after an empty
    thought, where its answer starts; with thinking on, the answer would start after reasoning
    the probe does not sample."""

    def __init__(self, lm, batch_size: int = 8, spellings: str = "all"):
        from .answer_paths import answer_map  # torch: not at import (the app reads MoveProbs without it)

        self.lm = lm
        self.batch_size = max(1, batch_size)
        with lm.thinking(False):
            context = lm.chat_text([{"role": "user", "content": "Move."}])
        self.map = answer_map(lm.tokenizer, context, probe_spellings(spellings), ANSWER_OPENING)

    def read(self, prompts: Sequence[list[dict]], should_stop: Callable[[], bool] | None = None) -> list[MoveProbs]:
        """Batches of distinct prompts (held-out maps repeat layouts), the answers' token tree read
        after each; the prompts' shared preamble is computed once (the generator's root cache)."""
        import torch

        with self.lm.thinking(False):
            sequences = [tuple(self.lm.encode_chat(p)) for p in prompts]
        distinct = list(dict.fromkeys(sequences))
        read: dict[tuple, MoveProbs] = {}
        read_deeper = lambda first_level: self.map.worth_reading(first_level, SKIP_BELOW)  # noqa: E731
        for start in range(0, len(distinct), self.batch_size):
            if should_stop is not None and should_stop():
                break
            chunk = distinct[start:start + self.batch_size]
            moves, opening = self.map.score(
                self.lm.generator.tree_log_probs(chunk, self.map.tree, self.map.columns, read_deeper))
            on_moves = torch.stack([moves[m] for m in MOVES], -1)
            total = torch.logsumexp(on_moves, -1)
            chosen = torch.exp(on_moves - total.unsqueeze(-1)).nan_to_num(0.0)  # no move at all: all zero
            masses = torch.exp(total - opening).nan_to_num(0.0).clamp(0.0, 1.0)
            for seq, row, mass in zip(chunk, chosen.tolist(), masses.tolist()):
                read[seq] = MoveProbs(dict(zip(MOVES, row)), mass)
        return [read[seq] for seq in sequences if seq in read]

    def states(self, states: Sequence[ProbeState], experience: str | None = None,
               should_stop: Callable[[], bool] | None = None) -> ProbeResult:
        """Student (no experience) or teacher (the experience inserted) on the given states."""
        prompts = [insert_experience(s.prompt, experience) for s in states]
        return summarise(states, self.read(prompts, should_stop))


def probe_spellings(which: str) -> dict[str, tuple[str, ...]]:
    """The answers that count as each move: `all` the parser's spellings, closed by "]"; `words`
    the bracket and the word alone, not closed (the reading of runs before 2026-12-07)."""
    if which == "all":
        return {m: move_spellings(m) for m in MOVES}
    if which == "words":
        return {m: (ANSWER_OPENING + m,) for m in MOVES}
    raise ValueError(f"unknown probe spellings '{which}': choose one of {', '.join(PROBE_SPELLINGS)}")
