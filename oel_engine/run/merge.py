"""`oel merge`: the run's base model with its rounds applied (LoRA adapters merged in, or a full
fine-tuned round's model), as a plain HF checkpoint."""

from __future__ import annotations

from pathlib import Path

from ..config import LoopConfig
from ..errors import OelError
from ..fileio import atomic_directory
from .artifacts import RunArtifacts
from .store import RunStore


def merge_run(store: RunStore, config: LoopConfig, out_dir: Path, last_round: int | None = None, status=None) -> Path:
    """Apply rounds 0..last_round in order (each was trained on the previous one) and save."""
    from dataclasses import replace

    from ..model.loader import load_language_model
    from ..model.round_weights import apply_rounds

    adapters = RunArtifacts(store).adapters()
    if not adapters:
        raise OelError(f"run '{store.name}' has no adapters yet: run `oel consolidate` or `oel loop` first")
    if last_round is not None:
        if not 0 <= last_round < len(adapters):
            raise OelError(f"run '{store.name}' has adapters for rounds 0..{len(adapters) - 1}, not {last_round}")
        adapters = adapters[: last_round + 1]
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise OelError(f"'{out_dir}' exists and is not empty: choose a new folder")
    lm = load_language_model(replace(config.model, adapter=None), status=status)
    apply_rounds(lm, str(store.path.resolve()), adapters, len(adapters), status or (lambda _: None))
    with atomic_directory(out_dir) as tmp:
        lm.model.save_pretrained(tmp, safe_serialization=True)
        lm.tokenizer.save_pretrained(tmp)
    return out_dir
