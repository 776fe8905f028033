"""A run's stage state and the files its rounds leave beside the games (the experience is
`experience_index.py`'s).

saves/<run>/
  consolidation/round-R.jsonl             prefixes: {"prompt": [...], "privileged_context": "..."} + step
  checkpoints/round-R.pt                  LoRA + optimizer state at the last checkpointed step
  adapters/round-R/                       the round's LoRA adapter (PEFT format), or its whole model
                                          after full fine-tuning (config.json + safetensors)
  collect/round-R.partial.jsonl           games of an unfinished collection step (resume point)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import OelError
from ..fileio import (
    append_jsonl,
    atomic_directory,
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
)
from ..play.trajectory import Episode
from .experience_index import ExperienceIndex
from .store import RunStore


class RunArtifacts:
    def __init__(self, store: RunStore):
        self.store = store
        self.root = store.path
        self.experience = ExperienceIndex(store)

    # -- stage state ------------------------------------------------------------------------------

    def stage_done(self, round_index: int, stage: str) -> bool:
        from tinydb import Query

        q = Query()
        return bool(self.store.db.table("state").search((q.round == round_index) & (q.stage == stage)))

    def stages_done(self, round_index: int) -> set[str]:
        return {s["stage"] for s in self.store.db.table("state").all() if s.get("round") == round_index}

    def mark_done(self, round_index: int, stage: str, **info) -> None:
        if not self.stage_done(round_index, stage):
            self.store.db.table("state").insert({"round": round_index, "stage": stage, **info})

    def rounds_done(self) -> int:
        """Rounds whose last stage has finished."""
        from .listing import rounds_done

        return rounds_done(self.store.db.table("state").all())

    # -- consolidation data -------------------------------------------------------------------------

    def data_file(self, round_index: int) -> Path:
        return self.root / "consolidation" / f"round-{round_index}.jsonl"

    def write_data(self, round_index: int, records: list[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(self.data_file(round_index), text)

    def read_data(self, round_index: int) -> list[dict]:
        records, bad = read_jsonl(self.data_file(round_index))
        if bad:
            raise OelError(f"{self.data_file(round_index)} has {bad} unreadable lines: delete it to rebuild it")
        return records

    # -- collection in progress ---------------------------------------------------------------------

    def partial_file(self, round_index: int) -> Path:
        return self.root / "collect" / f"round-{round_index}.partial.jsonl"

    def partial_episodes(self, round_index: int) -> list[Episode]:
        records, _ = read_jsonl(self.partial_file(round_index))
        return [Episode.from_dict(r) for r in records]

    def add_partial(self, round_index: int, episode: Episode) -> None:
        append_jsonl(self.partial_file(round_index), [episode.to_dict()])

    def clear_partial(self, round_index: int) -> None:
        self.partial_file(round_index).unlink(missing_ok=True)

    # -- checkpoints and adapters ---------------------------------------------------------------

    def checkpoint_file(self, round_index: int) -> Path:
        return self.root / "checkpoints" / f"round-{round_index}.pt"

    def save_checkpoint(self, round_index: int, step: int, state: dict) -> None:
        import io

        import torch

        buffer = io.BytesIO()
        torch.save({"step": step, **state}, buffer)
        atomic_write_bytes(self.checkpoint_file(round_index), buffer.getvalue())

    def load_checkpoint(self, round_index: int) -> dict | None:
        import torch

        path = self.checkpoint_file(round_index)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged checkpoint: keep it aside, restart the round's training
            kept = path.with_suffix(".pt.corrupt")
            os.replace(path, kept)
            import logging

            logging.getLogger(__name__).warning("checkpoint %s unreadable (%s); kept as %s", path, exc, kept.name)
            return None

    def adapter_dir(self, round_index: int) -> Path:
        return self.root / "adapters" / f"round-{round_index}"

    def save_adapter(self, round_index: int, save) -> Path:
        """`save(folder)` writes the adapter; it lands under adapters/ only when complete."""
        target = self.adapter_dir(round_index)
        with atomic_directory(target) as tmp:
            save(tmp)
        return target

    def adapters(self) -> list[Path]:
        """Each finished round's update, oldest first: a LoRA adapter, or after full fine-tuning
        the whole model (`model/round_weights.py` applies either)."""
        from ..model.round_weights import is_update

        out, r = [], 0
        while is_update(self.adapter_dir(r)):
            out.append(self.adapter_dir(r))
            r += 1
        return out
