"""A loaded causal LM with its tokenizer: chat encoding and batched generation."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Hashable, Iterator, Sequence

import torch

from ..config import ModelConfig, SamplingConfig
from .decode_step import decode_step_for
from .generation import BatchGenerator, Generation
from .inference import InferenceCopy
from .packed_linear import CLEARLY_FASTER as PACKING_CLEARLY_FASTER
from .packed_linear import measure_packing, packing_available
from .precision import choose_inference


def packing_pays() -> bool:
    return measure_packing() >= PACKING_CLEARLY_FASTER


class LanguageModel:
    def __init__(self, model, tokenizer, name: str, config: ModelConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.config = config or ModelConfig()
        self.load_seconds = 0.0
        self.generator = BatchGenerator(model, tokenizer, self.eos_token_ids(), self.config.prefix_cache_mb,
                                        weights=self.inference_model, fast_decode=self.config.fast_decode)
        # Sampling and probing may run on a bf16 copy (measured faster on this CPU); training and
        # merges keep the loaded weights. The version says when the copy is stale.
        self.weights_version = 0
        self.inference_precision = choose_inference(self.config.inference_dtype, self.device,
                                                    next(model.parameters()).dtype)
        self._copy = None
        notes = []  # how sampling runs, beside its precision (recorded with the run's precision)
        if self.inference_precision.choice == "bf16":
            # packing needs oneDNN's bf16 path on this CPU (not on an AVX2-only one), then must pay
            pack = self.device.type == "cpu" and self.config.pack_weights and packing_available() and packing_pays()
            self._copy = InferenceCopy(model, torch.bfloat16, pack=pack, fuse=self.config.fast_decode)
            if pack:
                notes.append(f"weights packed for oneDNN (measured {measure_packing():.2f}x a plain bf16 linear)")
            if self._copy.fused:
                notes.append("q/k/v and gate/up fused")
        if self.config.fast_decode:
            step, why = decode_step_for(self._copy.model if self._copy is not None else model)
            notes.append("decode steps skip transformers' forward and read positions rows share once"
                         if step is not None else f"decode steps through the model's forward: {why}")
        if notes:
            self.inference_precision = replace(
                self.inference_precision, reason="; ".join([self.inference_precision.reason, *notes]))
        # What the weights hold beyond the base: (run folder, rounds merged). A run's rounds
        # merge on top of each other, so whoever prepares a policy must know this, not assume
        # base weights (the app keeps one model across stages and runs).
        self.merged: tuple[str | None, int] = (None, 0)

    def use_weights(self, model) -> None:
        """Swap in other weights (a LoRA-wrapped or merged model): generation follows, and
        cached prompt keys/values of the old weights are dropped."""
        self.model = model
        self.generator.model = model
        self.weights_changed()

    def weights_changed(self) -> None:
        """The weights were updated in place (an optimizer step): cached keys/values and the
        bf16 copy are stale."""
        self.weights_version += 1
        self.generator.reset_cache()

    def inference_model(self):
        """The model generation and the probe run: the loaded weights, or their bf16 copy
        brought up to date (LoRA deltas included, unless the adapter is switched off)."""
        if self._copy is None:
            return self.model
        lora = next((m for m in self.model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")), None)
        key = (self.weights_version, None if lora is None else bool(lora.disable_adapters))
        if self._copy.refresh(self.model, key):
            self.generator.reset_cache()
        return self._copy.model

    def eos_token_ids(self) -> list[int]:
        ids = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in self.tokenizer.get_vocab() else None
        if im_end is not None:
            ids.add(int(im_end))
        return sorted(ids)

    @contextmanager
    def thinking(self, on: bool) -> Iterator[None]:
        """Chat prompts with thinking switched `on` for a while (the instruction probe always runs
        without it, as the reference runs IFEval), then as the loaded settings say again."""
        saved = self.config
        self.config = replace(saved, thinking=on)
        try:
            yield
        finally:
            self.config = saved

    @property
    def device(self):
        return next(self.model.parameters()).device

    def chat_text(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=self.config.thinking
            )
        # Base models without a template: plain text with a cue for the answer.
        return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return self.tokenizer(self.chat_text(messages), add_special_tokens=False)["input_ids"]

    def generate(
        self,
        prompts: Sequence[list[dict]],
        sampling: SamplingConfig,
        keys: Sequence[Hashable | None] | None = None,
        generator=None,
        should_stop=None,
    ) -> list[Generation]:
        ids = [self.encode_chat(m) for m in prompts]
        return self.generator.generate(ids, sampling, keys=keys, generator=generator, should_stop=should_stop)
