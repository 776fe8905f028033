"""The forward passes that score sampled responses: rows right-padded, a shared prefix run once.

Why right padding: the pad tokens sit after each row's last token, where causal attention
never lets a real token see them, so no padding mask is needed and attention runs its causal
kernel (a left-padded batch needs a mask, and the masked kernel computes the whole square).

Why a shared prefix: in one step every teacher prompt starts with the same preamble and the same
experience block (in bench/consolidate.py 413 of 753 tokens) and every student prompt with the
same preamble. Running that prefix once per step and handing its keys/values to each
micro-batch is exact: a row's suffix attends to the same keys and values as before. When
gradients flow, the micro-batches see the prefix's keys/values as leaves; their gradients add up
there and go through the prefix's own graph once at the end (`SharedPrefix.backward`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from ..model.kv_cache import common_prefix_length, with_cache

MIN_SHARED_TOKENS = 16  # below this a prefix pass costs more than it saves

# configuration fields by which a CausalLM changes its logits after the output head: such models
# go through their own forward (a wider slice of logits) rather than decoder + head
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logits_scaling", "logit_scale")


def full_attention_only(config) -> bool:
    """Whether every layer attends to all earlier tokens (a sliding-window layer's cache keeps
    only its window, so a prefix cache handed on would not mean the same)."""
    types = getattr(config, "layer_types", None)
    if types is not None:
        return all(t == "full_attention" for t in types)
    return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False


def shared_length(sequences: list[list[int]], response_lens: list[int]) -> int:
    """Tokens every sequence starts with, leaving each row's first scored position (the token
    before its response) in the row's own part; 0 when too short to be worth a pass."""
    n = min(len(s) - r - 1 for s, r in zip(sequences, response_lens))
    for s in sequences[1:]:
        n = min(n, common_prefix_length(sequences[0], s))
    return n if n >= MIN_SHARED_TOKENS else 0


@dataclass
class SharedPrefix:
    """Per layer the [1, kv_heads, length, head_dim] keys and values of the shared tokens."""

    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    _graph_outputs: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.tokens)

    @classmethod
    def run(cls, model, tokens: list[int], device) -> "SharedPrefix":
        """One forward pass over `tokens`. Under autograd the returned keys/values are leaves
        (one graph for the prefix, however many micro-batches read it)."""
        ids = torch.tensor([tokens], device=device)
        cache = DynamicCache(config=model.config)
        model.get_decoder()(input_ids=ids, **with_cache(cache), use_cache=True)
        _check_cache(cache, len(tokens))
        keys = [layer.keys for layer in cache.layers]
        values = [layer.values for layer in cache.layers]
        outputs = keys + values
        # a tensor that needs no gradient (layer 0's keys when k_proj has no adapter) is shared as is
        leaves = [t.detach().requires_grad_() if t.requires_grad else t for t in outputs]
        return cls(tuple(tokens), leaves[: len(keys)], leaves[len(keys):], outputs)

    def cache_for(self, model, batch: int) -> DynamicCache:
        cache = DynamicCache(config=model.config)
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
        return cache

    def backward(self) -> None:
        """Send the gradients the micro-batches left on the keys/values through the prefix."""
        pairs = [(out, leaf.grad) for out, leaf in zip(self._graph_outputs, self.keys + self.values)
                 if out is not leaf and leaf.grad is not None]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        for out, leaf in zip(self._graph_outputs, self.keys + self.values):
            if out is not leaf:
                leaf.grad = None


def response_logits(model, sequences: list[list[int]], response_lens: list[int], pad_id: int, device,
                    prefix: SharedPrefix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits predicting each response token, [B, R, V] with each row's response right-aligned
    in the R = max(response_lens) columns, and the response mask [B, R].

    `model` is a transformers CausalLM (PEFT-wrapped or not); with `prefix`, every sequence
    starts with its tokens and only the rest goes through the model."""
    skip = prefix.length if prefix is not None else 0
    if prefix is not None and any(tuple(s[:skip]) != prefix.tokens for s in sequences):
        raise ValueError("a sequence does not start with the shared prefix it is scored with")
    batch, r_max = len(sequences), max(response_lens)
    longest = max(len(s) for s in sequences) - skip
    ids = torch.full((batch, longest), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq) - skip] = torch.tensor(seq[skip:])
    # column j of row i is predicted at position len - 1 - r_max + j (in the row's own part)
    ends = torch.tensor([len(s) - skip for s in sequences])
    where = (ends[:, None] - 1 - r_max + torch.arange(r_max)[None, :]).clamp(min=0)
    mask = torch.arange(r_max)[None, :] >= (r_max - torch.tensor(response_lens))[:, None]
    ids, where = ids.to(device), where.to(device)
    cache = prefix.cache_for(model, batch) if prefix is not None else None
    rows = torch.arange(batch, device=device)[:, None]
    if any(getattr(model.config, name, None) not in (None, 1, 1.0) for name in _LOGIT_POSTPROCESSING):
        first = int(where.min())
        out = model(input_ids=ids, **with_cache(cache), use_cache=cache is not None,
                    logits_to_keep=torch.arange(first, longest, device=device))
        logits = out.logits[rows, where - first]
    else:
        hidden = model.get_decoder()(input_ids=ids, **with_cache(cache), use_cache=cache is not None)
        logits = model.get_output_embeddings()(hidden.last_hidden_state[rows, where])
    if cache is not None:
        _check_cache(cache, skip + longest)
    return logits, mask.long().to(device)


def _check_cache(cache: DynamicCache, expected: int) -> None:
    if cache.get_seq_length() != expected:  # e.g. checkpointed layers in training mode drop it
        raise RuntimeError(f"the model did not keep the shared prefix's cache ({cache.get_seq_length()} of "
                           f"{expected} positions); scoring without a shared prefix is needed here")
