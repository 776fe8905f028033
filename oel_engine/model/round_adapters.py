"""A run's round adapters stacked on one loaded base model, switched on and off by name.

Round R's adapter was trained on the base with rounds 0..R-1 merged in, and a LoRA delta does not
depend on the weights beneath it, so the base with adapters 0..R switched on computes what the
merged model of round R computes (rounding aside; tested against `oel merge`). Loading each
adapter once by name (PEFT) makes any round's model, or the base with every adapter off, a
switch rather than a second copy of the model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OelError


def adapter_name(round_index: int) -> str:
    return f"round-{round_index}"


class RoundAdapters:
    """Owns the PEFT wrapper around `lm`'s weights while a round's model is chosen for play.

    `select(run_key, folders, rounds)` makes `lm` compute the base plus adapters 0..rounds-1 of
    one run; `release()` hands the plain base weights back (nothing merged), which a stage or a
    merge needs before it touches the weights."""

    def __init__(self, lm):
        self.lm = lm
        self.peft = None
        self.owner: str | None = None  # the run whose adapters are loaded
        self.loaded: list[Path] = []
        self.active = 0  # adapters switched on (0: the base)

    def select(self, run_key: str, folders: list[Path], rounds: int) -> None:
        if not 0 <= rounds <= len(folders):
            raise OelError(f"the run has adapters for {len(folders)} round(s), not {rounds}")
        if self.owner != run_key:
            self.release()
        for i in range(len(self.loaded), rounds):
            self._load(i, folders[i])
        self.owner = run_key if self.peft is not None else None
        if self.peft is None or rounds == self.active:
            self.active = rounds if self.peft is not None else 0
            return
        tuner = self.peft.base_model
        if rounds == 0:
            tuner.disable_adapter_layers()
        else:
            tuner.enable_adapter_layers()
            tuner.set_adapter([adapter_name(i) for i in range(rounds)], inference_mode=True)
        self.active = rounds
        self.lm.weights_changed()  # cached keys/values and the bf16 copy belong to the old choice

    def _load(self, i: int, folder: Path) -> None:
        from peft import PeftModel

        if not (folder / "adapter_config.json").is_file():
            raise OelError(f"round {i} has no adapter in {folder}")
        try:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.lm.model, str(folder), adapter_name=adapter_name(i))
                self.lm.use_weights(self.peft)
            else:
                self.peft.load_adapter(str(folder), adapter_name=adapter_name(i))
        except OelError:
            raise
        except Exception as exc:  # PEFT raises many types for a mismatched adapter
            raise OelError(f"cannot load round {i}'s adapter from {folder}: {str(exc).splitlines()[0]}") from None
        for p in self.peft.parameters():
            p.requires_grad_(False)
        self.loaded.append(folder)
        self.active = -1  # what is switched on is unknown now: the caller's select sets it

    def release(self) -> None:
        """The plain base weights back in `lm` (the adapters dropped, nothing merged)."""
        if self.peft is None:
            return
        base = self.peft.unload()
        self.lm.use_weights(base)
        self.peft, self.owner, self.loaded, self.active = None, None, [], 0
