"""Applying a run's rounds to the loaded model: what round R's policy is.

Each round leaves its update in `adapters/round-R/`: a PEFT LoRA adapter (adapter_config.json),
merged on top of the rounds before it, or, after full fine-tuning, the whole model
(config.json + weights), which replaces what came before. The model records what it holds
(`lm.merged`), so weights are never merged twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import OelError


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def is_full_model(folder: Path) -> bool:
    return not is_adapter(folder) and (Path(folder) / "config.json").is_file()


def is_update(folder: Path) -> bool:
    return is_adapter(folder) or is_full_model(folder)


def apply_rounds(lm, run_key: str, folders: list[Path], rounds: int, status: Callable[[str], None] = lambda _: None) -> None:
    """Make `lm` hold the base with the run's rounds 0..rounds-1 applied (`folders` their
    updates, oldest first). Weights ahead of that, or from another run or adapter, are replaced by
    a fresh load of the base first."""
    from peft import PeftModel

    from .loader import restore_base

    owner, merged = lm.merged
    if merged and (owner != run_key or merged > rounds):
        status(f"Reloading the base model to get round {rounds}'s starting policy...")
        restore_base(lm, status)
        merged = 0
    # a full model replaces everything before it: start from the newest one that is needed
    fulls = [i for i in range(merged, rounds) if i < len(folders) and is_full_model(folders[i])]
    if fulls:
        merged = fulls[-1]
    while merged < rounds:
        if merged >= len(folders) or not is_update(folders[merged]):
            where = folders[merged] if merged < len(folders) else f"adapters/round-{merged}"
            raise OelError(f"round {merged} has no adapter or model in {where}; cannot make round {rounds}'s policy")
        folder = folders[merged]
        if is_full_model(folder):
            status(f"Loading round {merged}'s model...")
            lm.use_weights(load_full_model(folder, lm))
        else:
            status(f"Merging the round {merged} adapter into the policy...")
            lm.use_weights(PeftModel.from_pretrained(lm.model, str(folder)).merge_and_unload())
        merged += 1
        lm.merged = (run_key, merged)


def load_full_model(folder: Path, lm):
    """A full fine-tuned round's weights, in the loaded model's dtype and device."""
    from transformers import AutoModelForCausalLM

    current = next(lm.model.parameters())
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=current.dtype)
    model.to(current.device)
    model.eval()
    return model
