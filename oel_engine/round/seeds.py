"""Every random choice of a run, derived from the run seed, so a resumed run replays exactly.

Map seeds of training: round r's first 100,000 seeds below EVAL_SEED_BASE hold collection
steps 0-49 (1,000 games each) and, from 50,000 on, the extraction steps. Collection steps from 50
on (the reference runs T = 100) go to a space of their own far above, 1,000,000 seeds per round
from 10,000,000, so collection never replays an extraction map for any number of steps. The
held-out maps (EVAL_SEED_BASE + i, or the reference's 468,460,046 + 1,000 i) are never played for
training.
"""

from __future__ import annotations

ROUND_SEEDS = 100_000
EXTRACT_OFFSET = 50_000
LOW_COLLECT_STEPS = EXTRACT_OFFSET // 1_000  # collection steps that fit below the extraction maps
HIGH_BASE, HIGH_ROUND_SEEDS = 10_000_000, 1_000_000
MAX_ROUNDS = 10  # round 10's seeds would reach the held-out maps at EVAL_SEED_BASE


def _check_round(round_index: int) -> None:
    if not 0 <= round_index < MAX_ROUNDS:
        from ..errors import OelError

        raise OelError(f"a run has at most {MAX_ROUNDS} rounds (0-{MAX_ROUNDS - 1}); start a new run to go on")


def collect_seed(round_index: int, step: int, game: int) -> int:
    _check_round(round_index)
    if step < LOW_COLLECT_STEPS:
        return round_index * ROUND_SEEDS + step * 1_000 + game
    return HIGH_BASE + round_index * HIGH_ROUND_SEEDS + step * 1_000 + game


def extract_seed(round_index: int, step: int) -> int:
    """The map of extraction step `step`: the SAME for all K runs (they differ only in sampling)."""
    _check_round(round_index)
    return round_index * ROUND_SEEDS + EXTRACT_OFFSET + step


def stream_seed(run_seed: int, round_index: int, stage: str, unit: int = 0) -> int:
    """A reproducible seed for one random stream of the run."""
    code = sum((i + 1) * ord(c) for i, c in enumerate(stage))
    return (run_seed * 1_000_003 + round_index * 10_007 + code * 101 + unit) % (2**31 - 1)
