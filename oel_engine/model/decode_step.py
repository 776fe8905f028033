"""One decode step of a Llama-family model without transformers' per-call machinery.

A decode step feeds one token per row through every layer. transformers' forward does this
through ~8,000 small tensor ops per step for SmolLM2 (mask building, module hooks, keyword
plumbing, position embeddings per layer, separate q/k/v and gate/up projections); on a CPU that
bookkeeping cost as much as the weights' matmuls. This step calls the same modules and the same
kernels in the same order (RMSNorm through torch's rms_norm, which rounds as transformers' does,
rotary embeddings from the model's own module, SDPA with the key/value heads packed as transformers packs them for one query), so
its logits are bit-identical to the model's forward on the same cache (tests hold it), but once
per layer and with q and k rotated together. Projections the inference copy fused into one
matmul (fused_projections.py) are read with one call.

Where rows hold the same cached positions (the preamble all prompts start with; one experience
shared by the games of an in-context evaluation sample), attention is split by the cache's
`SharedLayout` (`shared_prefix_attention`): those positions are read once per step for all the
rows holding them, in one matmul-shaped kernel call, each row's own positions apart, and the parts
merged by their log-sum-exps. With a 430-token experience shared by 64 rows that spares ~0.6 GB of
reads per step (a 135 ms step takes 88). The logits then agree with the forward's to rounding, not
bit for bit (tests hold both cases; `share_reads=False` on the generator keeps the bits).

Used for plain CPU models of the families below with no LoRA layers and no sliding-window
attention (`decode_step_for` says why not otherwise, and generation falls back to the forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .fused_projections import fused_parts

# Decoder layers that are exactly: RMSNorm, q/k/v projections (with an optional per-head RMSNorm
# of q and k), rotary embeddings, attention, o projection, residual, RMSNorm, gated MLP, residual.
FAMILIES = {"llama", "mistral", "qwen2", "qwen3"}


def rms_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """transformers' LlamaRMSNorm.forward: torch's rms_norm rounds as it does (upcast, normalize,
    round to the input's dtype, then scale; the tests hold the logits bit-identical) in one call
    instead of seven."""
    return torch.nn.functional.rms_norm(x, x.shape[-1:], norm.weight, norm.variance_epsilon)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' apply_rotary_pos_emb for one tensor."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, 1, L] zeros where `mask` attends and -inf where not: what SDPA's CPU kernel makes of
    a boolean mask in every call, made once per step instead of once per layer."""
    return torch.zeros(mask.shape, dtype=dtype).masked_fill_(mask == 0, float("-inf"))[:, None, None, :]


# SDPA's CPU flash kernel; unlike the public function it also returns each query's log-sum-exp,
# which two partial attentions need to be merged exactly
_flash_attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def _attend_once(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float):
    """Every query of q [n, kv_heads, group, dim] over one row's keys/values [1, kv_heads, L, dim],
    as one kernel call reading them once: (out [n, kv_heads, group, dim], log-sum-exp [n, kv_heads, group])."""
    rows, kv_heads, group, dim = q.shape
    every_query = q.transpose(0, 1).reshape(1, kv_heads, rows * group, dim)
    out, lse = _flash_attention(every_query, keys, values, scale=scale)
    return (out.reshape(kv_heads, rows, group, dim).transpose(0, 1),
            lse.reshape(kv_heads, rows, group).transpose(0, 1))


def shared_prefix_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, layout, groups: list,
                            own_mask: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Attention of q [B, kv_heads, group, dim] (a row's query heads under their key/value head)
    over keys/values [B, kv_heads, L, dim] laid out as `layout` (kv_cache.SharedLayout) says,
    `groups` its groups() now: positions held alike are read once, from one row, for all the rows
    holding them; each row's own positions under `own_mask` (additive, [B, 1, 1, L - own_start],
    or None). The parts are merged by their log-sum-exps: softmax over all = each part's softmax
    weighted by its share of the total mass. Returns [B, kv_heads, group, dim]."""
    # the kernel wants one dtype; under autocast (consolidation's sampling of a float32 model) q
    # and k come out of the rotation in float32 and v out of its projection in bf16: SDPA would
    # cast all three to the autocast dtype, so do that here
    if torch.is_autocast_enabled(q.device.type):
        dtype = torch.get_autocast_dtype(q.device.type)
        q, keys, values = q.to(dtype), keys.to(dtype), values.to(dtype)
    outs, lses = [], []
    if layout.shared:
        out, lse = _attend_once(q, keys[:1, :, : layout.shared], values[:1, :, : layout.shared], scale)
        outs.append(out)
        lses.append(lse)
    if groups:
        out = q.new_zeros(q.shape, dtype=torch.float32)
        lse = q.new_full(q.shape[:3], float("-inf"), dtype=torch.float32)  # no mass for rows in no group
        for rows, row, end in groups:
            span = slice(layout.shared, end)
            group_out, lse[rows] = _attend_once(q[rows], keys[row : row + 1, :, span], values[row : row + 1, :, span], scale)
            out[rows] = group_out.float()
        outs.append(out)
        lses.append(lse)
    own = slice(layout.own_start, None)
    out, lse = _flash_attention(q, keys[:, :, own], values[:, :, own], attn_mask=own_mask, scale=scale)
    outs.append(out)
    lses.append(lse)
    if len(outs) == 2:
        weight = torch.sigmoid(lses[0] - lses[1])[..., None]
        return torch.lerp(outs[1].float(), outs[0].float(), weight).to(q.dtype)
    weights = torch.softmax(torch.stack(lses), dim=0)[..., None]
    return (torch.stack([o.float() for o in outs]) * weights).sum(0).to(q.dtype)


@dataclass
class _Layer:
    norm_in: nn.Module
    qkv: nn.Module | None  # one fused projection, or None: q, k, v separately
    q: nn.Module
    k: nn.Module
    v: nn.Module
    q_norm: nn.Module | None
    k_norm: nn.Module | None
    o: nn.Module
    norm_post: nn.Module
    gate_up: nn.Module | None
    gate: nn.Module
    up: nn.Module
    down: nn.Module
    act: nn.Module


def decode_step_for(model) -> tuple["DecodeStep | None", str]:
    """(a DecodeStep over `model`, "") or (None, why the model's own forward must run)."""
    config = getattr(model, "config", None)
    family = getattr(config, "model_type", None)
    if family not in FAMILIES:
        return None, f"model type {family!r} is not one of {sorted(FAMILIES)}"
    if next(model.parameters()).device.type != "cpu":
        return None, "the decode step is measured and tested on CPUs only"
    if any(hasattr(m, "lora_A") for m in model.modules()):
        return None, "LoRA layers compute base and adapter apart; the forward keeps that order"
    if getattr(config, "_attn_implementation", "sdpa") != "sdpa":
        return None, f"attention implementation {config._attn_implementation!r} is not SDPA"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return None, "sliding-window attention"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return None, "an activation or tensor-parallel split the step does not reproduce"
    return DecodeStep(model), ""


class DecodeStep:
    """Logits for one new token per row, the cache updated in place (`BufferCache`)."""

    def __init__(self, model):
        inner = model.model
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = inner.norm
        self.head = model.lm_head
        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim**-0.5
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(_Layer(
                norm_in=layer.input_layernorm, qkv=fused_parts(attn.q_proj, attn.k_proj, attn.v_proj),
                q=attn.q_proj, k=attn.k_proj, v=attn.v_proj,
                q_norm=getattr(attn, "q_norm", None), k_norm=getattr(attn, "k_norm", None), o=attn.o_proj,
                norm_post=layer.post_attention_layernorm, gate_up=fused_parts(mlp.gate_proj, mlp.up_proj),
                gate=mlp.gate_proj, up=mlp.up_proj, down=mlp.down_proj, act=mlp.act_fn))

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, cache) -> torch.Tensor:
        """tokens [B], positions [B, 1], mask [B, cached + 1] (1 = attend), cache: the BufferCache
        the prompt was prefilled into. Returns [B, vocab] logits in the model's dtype."""
        batch = tokens.shape[0]
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        h = self.embed(tokens)
        cos, sin = self.rotary(h, positions)  # [B, 1, dim]: broadcast over the heads
        # transformers drops the mask when no row has padding and lets SDPA expand the key/value
        # heads itself; with padding it packs the query heads under their key/value head
        attend = None if bool(mask.all()) else additive_mask(mask, h.dtype)
        layout = getattr(cache, "layout", None)
        split = layout is not None and layout.splits
        if split:
            own = mask[:, layout.own_start :]
            attend = None if bool(own.all()) else additive_mask(own, h.dtype)
            groups = layout.groups()  # once per step: the rows may have changed since the last
        group = heads // kv_heads
        q_size, kv_size = heads * dim, kv_heads * dim
        for layer, cached in zip(self.layers, cache.layers):
            x = rms_norm(layer.norm_in, h)
            if layer.qkv is not None:
                qkv = layer.qkv(x)
                q, k, v = qkv[:, :q_size], qkv[:, q_size : q_size + kv_size], qkv[:, q_size + kv_size :]
            else:
                q, k, v = layer.q(x), layer.k(x), layer.v(x)
            if layer.q_norm is None and layer.qkv is not None:  # q and k rotated in one go
                qk = rotate(qkv[:, : q_size + kv_size].view(batch, heads + kv_heads, dim), cos, sin)
                q, k = qk[:, :heads], qk[:, heads:]
            else:
                q, k = q.view(batch, heads, dim), k.view(batch, kv_heads, dim)
                if layer.q_norm is not None:
                    q, k = rms_norm(layer.q_norm, q), rms_norm(layer.k_norm, k)
                q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            keys, values = cached.update(k[:, :, None], v.view(batch, kv_heads, 1, dim))
            if split:
                out = shared_prefix_attention(q.reshape(batch, kv_heads, group, dim), keys, values, layout, groups,
                                              attend, self.scale)
            elif attend is None:
                out = torch.nn.functional.scaled_dot_product_attention(
                    q[:, :, None], keys, values, scale=self.scale, enable_gqa=heads != kv_heads)
            else:
                out = torch.nn.functional.scaled_dot_product_attention(
                    q.reshape(batch, kv_heads, group, dim), keys, values, attn_mask=attend, scale=self.scale)
            h = h + layer.o(out.reshape(batch, q_size))
            x = rms_norm(layer.norm_post, h)
            if layer.gate_up is not None:
                gate_up = layer.gate_up(x)
                inner = gate_up.shape[-1] // 2
                x = layer.act(gate_up[:, :inner]) * gate_up[:, inner:]
            else:
                x = layer.act(layer.gate(x)) * layer.up(x)
            h = h + layer.down(x)
        return self.head(rms_norm(self.norm, h))
