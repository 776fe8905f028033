"""Presets: `demo` for a 2-core CPU and the embedded model, `teach` for rounds of a person's
lessons while a room watches, and the reference's two released recipes for a GPU,
`paper-frozenlake` (Qwen3-1.7B) and `paper-sokoban` (Qwen3-4B-Instruct-2507), every value as the
reference's scripts set it (cited beside each). `paper` is the old name of `paper-frozenlake`.
"""

from __future__ import annotations

from dataclasses import replace

from .config import (
    ConsolidationConfig,
    EvalConfig,
    ExtractionConfig,
    GameConfig,
    LoopConfig,
    ModelConfig,
    SamplingConfig,
)
from .errors import OelError

PRESETS = ("demo", "teach", "paper-frozenlake", "paper-sokoban")
# The teach preset's sizes (measured to fit a round in 3 minutes on a 2-core CPU).
TEACH_STEPS, TEACH_GAMES_PER_STEP = 3, 4
TEACH_EVAL_MAPS, TEACH_EVAL_SAMPLES, TEACH_PROBE_MAPS = 16, 2, 32


def demo(game: GameConfig, model: ModelConfig, rounds: int) -> LoopConfig:
    """One round of the embedded model in four to five minutes on a 2-core CPU (docs/measurements.md
    has the measured time per stage). Everything is scaled down; the structure is the paper's."""
    evaluation = EvalConfig(episodes=32, samples=2,
                            sampling=SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=64))
    if model.model == "embedded":
        # every held-out game of an evaluation in one batch: 64 rows ran the three evaluations of
        # a demo round in 36/52/41 s against 48/72/54 s as two batches of 32, for ~0.4 GB more
        # peak memory (docs/measurements.md). Sized for the embedded model: a larger one keeps
        # its batch (its cache grows with it).
        model = replace(model, batch_size=evaluation.episodes * evaluation.samples)
    return LoopConfig(
        game=game,
        model=model,
        deploy=SamplingConfig(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=64),
        # The 135M model never writes the "- EXPERIENCE ITEM:" format (measured: 0 of 4 answers),
        # so the demo keeps its free-text lessons (the paper's unstructured variant).
        extraction=ExtractionConfig(runs=2, steps=4, format="unstructured", accumulate=True, budget_tokens=384,
                                    max_new_tokens=128, curve_every=2, curve_episodes=8),
        # LoRA LR 1e-3, chosen by the probe (bench/lesson_probe.py): with a shipped lesson as the
        # teacher's context, 1e-4 kept 8% of the lesson's effect on the good-move probability,
        # 1e-3 kept 50% +- 17% (3 seeds); 2e-3 moved it the wrong way and 3e-3 diverged.
        consolidation=ConsolidationConfig(steps=4, games_per_step=6, loss="topk", top_k=256, max_new_tokens=64,
                                          learning_rate=1e-3, micro_batch=2, gradient_checkpointing="off",
                                          autocast="auto"),
        evaluation=evaluation,
        rounds=rounds,
        preset="demo",
    )


# The reference is microsoft/LMOps, folder oel/ (commit 4f2a9de). Citations below name its
# files: usage_example.sh, scripts/textgame_*.sh, tools/make_exp_list.py,
# verl/verl/trainer/config/ppo_trainer.yaml, verl/verl/trainer/ppo/ray_trainer.py and
# verl/verl/workers/rollout/vllm_rollout/vllm_rollout_spmd.py (tests/unit/test_presets.py pins each value).
PAPER_MODELS = {"paper-frozenlake": "Qwen/Qwen3-1.7B", "paper-sokoban": "Qwen/Qwen3-4B-Instruct-2507"}
PAPER_GAMES = {"paper-frozenlake": GameConfig(name="frozenlake", size=3, holes=2, max_turns=5),
               "paper-sokoban": GameConfig(name="sokoban", room=6, boxes=1, max_turns=5)}


def _paper(game: GameConfig, model: ModelConfig, rounds: int, *, preset: str, thinking: bool, reasoning_free_text: bool,
           steps: int, use_step: int, budget: int, consolidation_steps: int, learning_rate: float) -> LoopConfig:
    """What both released recipes share, with the values where they differ passed in."""
    return LoopConfig(
        # the turn prompt states the objective (vllm_rollout_spmd.py:274-277); at most 5 model
        # calls per game (usage_example.sh:4,35 "...,1024,5,...")
        game=replace(game, objective=True),
        # thinking per recipe; float32 master weights: a 1e-6 step would round away in bf16
        # weights (the reference trains FSDP float32 parameters in bf16 compute)
        model=replace(model, thinking=thinking, dtype="float32"),
        # collection: T 0.7, no top-p/top-k (textgame_generate_deploy.sh:106), 1024 tokens
        # (textgame_generate_deploy.sh:7 MAX_RESPONSE_LENGTH=1024)
        deploy=SamplingConfig(temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=1024),
        extraction=ExtractionConfig(
            runs=10,  # checkpoints 50..500 step 50 (usage_example.sh:4,35; tools/make_exp_list.py:16)
            steps=steps,  # VAL_SAMPLES_LIMIT (usage_example.sh:4,35)
            use_step=use_step,  # the last field of make_exp_list (usage_example.sh:4,35)
            format="unstructured" if reasoning_free_text else "structured",  # prompt v3 / v4 (ray_trainer.py:1664-1710)
            reasoning=reasoning_free_text,  # v3: "After careful reasoning step by step, output ..." (ray_trainer.py:1664-1680)
            accumulate=not reasoning_free_text,  # EXP_SEL_WITH_PREV: False / True (usage_example.sh:35 / :4)
            budget_tokens=budget,  # experience_max_length (usage_example.sh:6,37)
            max_new_tokens=budget,  # MAX_RESPONSE_LENGTH "used as max length for experiential knowledge" (textgame_extract_inturn.sh:22)
            curve_every=5, curve_episodes=32),  # ours: the reference measures checkpoints instead
        consolidation=ConsolidationConfig(
            steps=consolidation_steps,  # --total_training_steps (usage_example.sh:8,39)
            games_per_step=128,  # data.train_batch_size 128 (ppo_trainer.yaml:42), not overridden by the deploy script
            loss="topk", top_k=256,  # --kl_loss_type full --kl_topk 256: top-k distribution KL (usage_example.sh:8,39)
            renormalize=False,  # KL_RENORM_TOPK=False (textgame_consolidate.sh:10)
            temperature=0.7, top_p=1.0,  # rollout.temperature=0.7 (textgame_consolidate.sh:152)
            max_new_tokens=1024,  # MAX_RESPONSE_LENGTH=1024 (textgame_consolidate.sh:11)
            update="full",  # full fine-tuning: no LoRA in the consolidate script or ppo_trainer.yaml
            learning_rate=learning_rate,  # --actor_lr (usage_example.sh:8,39), constant (ppo_trainer.yaml:281)
            weight_decay=0.01,  # ppo_trainer.yaml:287
            grad_clip=1.0,  # ppo_trainer.yaml:177
            autocast="bf16",  # bf16 compute
            micro_batch=4, gradient_checkpointing="auto"),  # ours (enable_gradient_checkpointing=True on CUDA)
        evaluation=EvalConfig(
            episodes=128, held_out="reference",  # held_out_size=128, seeds 468460046 + 1000 i (ray_trainer.py:949)
            samples=3,  # ours: the released scripts read one sampling seed; more only add precision
            sampling=SamplingConfig(temperature=0.7, top_p=0.8, top_k=20, max_new_tokens=1024)),  # val_kwargs (textgame_eval.sh:96-98)
        rounds=rounds,
        preset=preset,
    )


def paper_frozenlake(game: GameConfig, model: ModelConfig, rounds: int) -> LoopConfig:
    """The reference's Frozen Lake recipe for Qwen3-1.7B (usage_example.sh:32-52): thinking on,
    free-text extraction that reasons first and does not see earlier experience, K/N/step
    10/30/15, a 2048-token experience, 20 full fine-tuning steps at 5e-6 per round, 2 rounds."""
    return _paper(game, model, rounds, preset="paper-frozenlake", thinking=True, reasoning_free_text=True,
                  steps=30, use_step=15, budget=2048, consolidation_steps=20, learning_rate=5e-6)


def paper_sokoban(game: GameConfig, model: ModelConfig, rounds: int) -> LoopConfig:
    """The reference's Sokoban recipe for Qwen3-4B-Instruct-2507 (usage_example.sh:1-29): thinking
    off, structured items that see earlier experience, K/N/step 10/100/50, an 8192-token
    experience, 100 full fine-tuning steps at 1e-6 per round, 3 rounds."""
    return _paper(game, model, rounds, preset="paper-sokoban", thinking=False, reasoning_free_text=False,
                  steps=100, use_step=50, budget=8192, consolidation_steps=100, learning_rate=1e-6)


def default_rounds(preset: str) -> int:
    """Rounds of a preset's run: the reference ran 3 on Sokoban (usage_example.sh:2,12,20), 2 on
    Frozen Lake (:33,43); the CPU presets 2."""
    return 3 if canonical(preset) == "paper-sokoban" else 2


def default_model(preset: str) -> str:
    """The model a preset was made for (`embedded` for the CPU presets)."""
    return PAPER_MODELS.get(canonical(preset), "embedded")


def default_game(preset: str, name: str | None = None) -> GameConfig:
    """The game a preset was made for, or `name` with the paper's map family."""
    preset = canonical(preset)
    if name is None and preset in PAPER_GAMES:
        return PAPER_GAMES[preset]
    return GameConfig(name=name or "frozenlake")


def canonical(preset: str) -> str:
    return ALIASES.get(preset, preset)


def teach(game: GameConfig, model: ModelConfig, rounds: int) -> LoopConfig:
    """Rounds of a person's lessons for a demo on a 2-core CPU: no extraction (the teacher reads
    the run's lessons), a small collection and consolidation, and an evaluation that still shows
    the probe on the held-out start states and a pass rate with its spread. One round, its
    evaluations included, fits in 3 minutes (measured per stage: README)."""
    base = demo(game, model, rounds)
    return replace(
        base,
        extraction=replace(base.extraction, runs=1, steps=1, curve_every=0),
        consolidation=replace(base.consolidation, steps=TEACH_STEPS, games_per_step=TEACH_GAMES_PER_STEP,
                              teacher_context="lessons"),
        evaluation=replace(base.evaluation, episodes=TEACH_EVAL_MAPS, samples=TEACH_EVAL_SAMPLES,
                           probe_maps=TEACH_PROBE_MAPS),
        preset="teach",
    )


BUILDERS = {"demo": demo, "teach": teach, "paper-frozenlake": paper_frozenlake, "paper-sokoban": paper_sokoban}
ALIASES = {"paper": "paper-frozenlake"}  # the old name of the Frozen Lake recipe


def build(preset: str, game: GameConfig, model: ModelConfig, rounds: int) -> LoopConfig:
    name = canonical(preset)
    if name not in BUILDERS:
        raise OelError(f"unknown preset '{preset}': choose {', '.join(PRESETS)}")
    return BUILDERS[name](game, model, rounds).validate()


__all__ = ["PRESETS", "build", "canonical", "default_game", "default_model", "default_rounds", "demo", "paper_frozenlake", "paper_sokoban",
           "teach"]
