"""A loaded causal LM with its tokenizer: chat encoding and batched generation."""

from __future__ import annotations

from typing import Hashable, Sequence

from ..config import ModelConfig, SamplingConfig
from .generation import BatchGenerator, Generation


class LanguageModel:
    def __init__(self, model, tokenizer, name: str, config: ModelConfig | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.config = config or ModelConfig()
        self.load_seconds = 0.0
        self.generator = BatchGenerator(model, tokenizer, self.eos_token_ids(), self.config.prefix_cache_mb)
        # What the weights hold beyond the base: (run folder, rounds merged). A run's rounds
        # merge on top of each other, so whoever prepares a policy must know this, not assume
        # base weights (the app keeps one model across stages and runs).
        self.merged: tuple[str | None, int] = (None, 0)

    def use_weights(self, model) -> None:
        """Swap in other weights (a LoRA-wrapped or merged model): generation follows, and
        cached prompt keys/values of the old weights are dropped."""
        self.model = model
        self.generator.model = model
        self.generator.reset_cache()

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
