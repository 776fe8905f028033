"""Every random choice of a run, derived from the run seed, so a resumed run replays exactly.

Map seeds below EVAL_SEED_BASE: 100,000 per round; collection first, extraction after. The
held-out evaluation maps (EVAL_SEED_BASE and up) are never played for training.
"""

from __future__ import annotations

ROUND_SEEDS = 100_000
EXTRACT_OFFSET = 50_000


def collect_seed(round_index: int, step: int, game: int) -> int:
    return round_index * ROUND_SEEDS + step * 1_000 + game


def extract_seed(round_index: int, step: int) -> int:
    """The map of extraction step `step`: the SAME for all K runs (they differ only in sampling)."""
    return round_index * ROUND_SEEDS + EXTRACT_OFFSET + step


def stream_seed(run_seed: int, round_index: int, stage: str, unit: int = 0) -> int:
    """A reproducible seed for one random stream of the run."""
    code = sum((i + 1) * ord(c) for i, c in enumerate(stage))
    return (run_seed * 1_000_003 + round_index * 10_007 + code * 101 + unit) % (2**31 - 1)
