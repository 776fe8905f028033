"""Batched sampling with prefix KV reuse.

All unfinished games' prompts go through the model as one batch per turn. Each row reuses the
keys/values of the longest prefix it shares with an earlier prompt of the same game, or with the
shared root (the preamble every prompt starts with), so only new tokens are prefilled. Rows are
laid out as [left-padded reused past | left-padded new tokens]; explicit position ids keep every
row's positions contiguous, and the attention mask hides the padding in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..config import SamplingConfig
from .kv_cache import BufferCache, BufferLayer, PrefixEntry, PrefixStore, common_prefix_length

# A shared root is only worth a separate forward when it saves this many tokens per row.
MIN_ROOT_TOKENS = 16


@dataclass
class Generation:
    """One sampled response: its token ids (up to and including the end token) and text."""

    token_ids: list[int]
    text: str
    prompt_tokens: int
    reused_tokens: int
    finished: bool  # ended with an end token (False: cut at max_new_tokens)


def sample_next(logits: torch.Tensor, cfg: SamplingConfig, generator=None) -> torch.Tensor:
    """Next token per row from [B, V] logits: greedy at temperature 0, else top-k / top-p sampling.

    `generator` is one torch.Generator for the batch, or a list with one per row."""
    if cfg.temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / cfg.temperature
    if cfg.top_k and 0 < cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < cfg.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cum - sorted_logits.softmax(-1) > cfg.top_p  # keep the token that crosses top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(-1)
    if isinstance(generator, (list, tuple)):  # one stream per row: a row's draws ignore its batch mates
        return torch.cat([torch.multinomial(probs[i : i + 1], 1, generator=g) for i, g in enumerate(generator)]).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class BatchGenerator:
    """Generates responses for batches of token-id prompts with one model.

    `prefix_cache_mb` bounds the memory kept for prefix reuse between calls (0 turns reuse off;
    every prompt is then prefilled in full, still batched).
    """

    def __init__(self, model, tokenizer, eos_token_ids: Sequence[int], prefix_cache_mb: int = 2048):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = torch.tensor(sorted(set(eos_token_ids)), dtype=torch.long)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(self.eos_ids[0])
        supports_reuse = not _has_sliding_layers(model.config)
        self.store = PrefixStore(prefix_cache_mb * 2**20 if supports_reuse else 0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forget(self, key: Hashable) -> None:
        self.store.forget(key)

    def reset_cache(self) -> None:
        self.store.clear()

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        cfg: SamplingConfig,
        keys: Sequence[Hashable | None] | None = None,
        generator=None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Generation]:
        """Sample one response per prompt. `keys` name the game each prompt belongs to, for reuse;
        `generator` is one torch.Generator, or one per prompt (reproducible per row)."""
        if not prompts:
            return []
        keys = list(keys) if keys is not None else [None] * len(prompts)
        prompts = [list(p) for p in prompts]
        if self.store.enabled:
            self._refresh_root(prompts)
        matches = [self.store.best_match(k, p) if self.store.enabled else (None, 0) for k, p in zip(keys, prompts)]
        cache, mask, pos, input_ids = self._build_batch(prompts, matches, cfg.max_new_tokens)
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self._forward(input_ids, mask, pos, cache)
            if self.store.enabled:
                self._remember_prompts(prompts, keys, cache, mask)
            outputs = self._decode(logits, cache, mask, pos, cfg, generator, len(prompts), should_stop)
        finally:
            self.model.train(was_training)
        results = []
        for prompt, (_, reused), (ids, finished) in zip(prompts, matches, outputs):
            self.store.hit_tokens += reused
            self.store.computed_tokens += len(prompt) - reused
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Generation(ids, text, len(prompt), reused, finished))
        return results

    # -- building the batch ---------------------------------------------------------------

    def _refresh_root(self, prompts: list[list[int]]) -> None:
        """Make the shared root the longest prefix common to this batch, if it is worth it."""
        lcp = prompts[0]
        for p in prompts[1:]:
            lcp = lcp[: common_prefix_length(lcp, p)]
        lcp = lcp[: min(len(p) for p in prompts) - 1]
        root = self.store.root
        if len(lcp) < MIN_ROOT_TOKENS or (root is not None and root.tokens == tuple(lcp)):
            return
        if root is not None and common_prefix_length(root.tokens, lcp) >= len(lcp) - MIN_ROOT_TOKENS:
            return  # the current root already covers (almost) all of it
        device = self.device
        ids = torch.tensor([lcp], device=device)
        out = self.model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
        layers = out.past_key_values.layers
        self.store.set_root(PrefixEntry(tuple(lcp), [l.keys.clone() for l in layers], [l.values.clone() for l in layers]))

    def _build_batch(self, prompts, matches, max_new_tokens: int):
        device = self.device
        batch = len(prompts)
        reuse = [n for _, n in matches]
        past_len = max(reuse)
        new_len = max(len(p) - n for p, n in zip(prompts, reuse))
        input_ids = torch.full((batch, new_len), self.pad_id, dtype=torch.long)
        pos = torch.zeros((batch, new_len), dtype=torch.long)
        mask = torch.zeros((batch, past_len + new_len), dtype=torch.long)
        for i, (p, n) in enumerate(zip(prompts, reuse)):
            fresh = p[n:]
            input_ids[i, new_len - len(fresh) :] = torch.tensor(fresh)
            pos[i, new_len - len(fresh) :] = torch.arange(n, n + len(fresh))
            mask[i, past_len - n : past_len] = 1
            mask[i, past_len + new_len - len(fresh) :] = 1
        layers = []
        if past_len > 0:
            template = next(e for e, n in matches if e is not None and n > 0)
            for layer in range(len(template.keys)):
                k0, v0 = template.keys[layer], template.values[layer]
                keys = k0.new_zeros((batch, k0.shape[1], past_len, k0.shape[3]))
                values = v0.new_zeros((batch, v0.shape[1], past_len, v0.shape[3]))
                for i, (entry, n) in enumerate(matches):
                    if n > 0:
                        keys[i, :, past_len - n :] = entry.keys[layer][0, :, :n]
                        values[i, :, past_len - n :] = entry.values[layer][0, :, :n]
                layers.append((keys, values))
        capacity = past_len + new_len + max_new_tokens + 1
        if layers:
            cache = BufferCache([BufferLayer(k, v, capacity) for k, v in layers])
        else:
            cache = BufferCache([])
            cache.layer_class_to_replicate = _lazy_buffer_layer(capacity)
        return cache, mask.to(device), pos.to(device), input_ids.to(device)

    # -- running the model ----------------------------------------------------------------

    def _forward(self, input_ids, mask, pos, cache):
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]

    def _remember_prompts(self, prompts, keys, cache: BufferCache, mask) -> None:
        """Store each keyed row's prompt keys/values (the valid positions of its row)."""
        for i, (prompt, key) in enumerate(zip(prompts, keys)):
            if key is None:
                continue
            idx = mask[i].nonzero().squeeze(-1)
            entry = PrefixEntry(
                tuple(prompt),
                [layer.keys[i : i + 1, :, idx].clone() for layer in cache.layers],
                [layer.values[i : i + 1, :, idx].clone() for layer in cache.layers],
            )
            self.store.put(key, entry)

    def _decode(self, logits, cache, mask, pos, cfg, generator, batch, should_stop):
        device = self.device
        eos = self.eos_ids.to(device)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        rows = torch.arange(batch, device=device)  # original row index of each live batch row
        next_pos = pos[:, -1:] + 1
        for step in range(cfg.max_new_tokens):
            row_generators = [generator[r] for r in rows.tolist()] if isinstance(generator, (list, tuple)) else generator
            tokens = sample_next(logits, cfg, row_generators)
            done_now = torch.isin(tokens, eos)
            for j, (row, tok, d) in enumerate(zip(rows.tolist(), tokens.tolist(), done_now.tolist())):
                outputs[row].append(tok)
                if d:
                    finished[row] = True
            live = (~done_now).nonzero().squeeze(-1)
            if live.numel() == 0 or step == cfg.max_new_tokens - 1:
                break
            if should_stop is not None and should_stop():
                break
            if live.numel() < rows.numel():  # drop finished rows so stragglers decode alone
                cache.batch_select_indices(live)
                rows, tokens, mask, next_pos = rows[live], tokens[live], mask[live], next_pos[live]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = self._forward(tokens[:, None], mask, next_pos, cache)
            next_pos = next_pos + 1
        return [(ids, done) for ids, done in zip(outputs, finished)]


def _lazy_buffer_layer(capacity: int):
    """A layer factory for an empty cache: the first update allocates the buffer."""

    class _Lazy(BufferLayer):
        def __init__(self):
            DynamicLayer.__init__(self)
            self._cap = capacity

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                BufferLayer.__init__(self, key_states, value_states, max(self._cap, key_states.shape[-2]))
                return self.keys, self.values
            return BufferLayer.update(self, key_states, value_states)

    return _Lazy


def _has_sliding_layers(config) -> bool:
    text_config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None) or []
    if any("sliding" in str(t) for t in layer_types):
        return True
    return bool(getattr(text_config, "sliding_window", None)) and getattr(text_config, "use_sliding_window", True)
