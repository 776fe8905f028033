"""Batched sampling with prefix KV reuse.

All unfinished games' prompts go through the model as one batch per turn. Each row reuses the
keys/values of the longest prefix it shares with an earlier prompt of the same game, or with the
shared root (the preamble every prompt starts with), so only new tokens are prefilled. Rows are
laid out as [left-padded reused past | left-padded new tokens]; explicit position ids keep every
row's positions contiguous, and the attention mask hides the padding in between.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..config import SamplingConfig
from .decode_step import decode_step_for
from .kv_cache import (
    BufferCache,
    BufferLayer,
    PrefixEntry,
    PrefixStore,
    SharedLayout,
    batch_prefix_length,
    common_prefix_length,
    returned_cache,
    with_cache,
)
from .prefill import chunked_prefill

# A shared root is only worth a separate forward when it saves this many tokens per row.
MIN_ROOT_TOKENS = 16
# Finished rows are dropped from the batch once 1/COMPACT_AT of it has finished.
COMPACT_AT = 4
# Decode steps read positions several rows hold alike once when at least this many are, when
# that spares reading MIN_SPLIT_SAVING positions per step in all (rows x positions beyond one
# row's), and, for a group of rows beyond what all rows hold, MIN_GROUP_SAVING. Measured on
# SmolLM2 (30 layers): splitting costs ~3 ms a step in kernel calls and merges (2 rows under a
# 430-token experience: 27.8 ms against 24.8; 4 rows: 29.4 against 27.7; 8 rows: 33.4 against
# 36.1; 16 first-turn rows under a 99-token preamble: 41.7 against 40.1); a further group ~2 ms
# (2 groups of 8 rows x 282 positions: 47-48 ms steps against 50 without them).
MIN_SHARED_TOKENS = 32
MIN_SPLIT_SAVING = 2048
MIN_GROUP_SAVING = 1024


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

    Top-k first narrows the columns to the k best (sorted), so top-p then works on k values, not
    on a sort of the whole vocabulary at every step. `generator` is one torch.Generator for the
    batch, or a list with one per row."""
    if cfg.temperature <= 0:
        # float first: the same pick (bf16 converts exactly), and a bf16 argmax over 49k columns
        # ran 3x the conversion plus a float32 argmax on the CPU here
        return logits.float().argmax(dim=-1)
    logits = logits.float() / cfg.temperature
    ids = None  # the vocabulary id of each column, once the columns are a sorted subset
    if cfg.top_k and 0 < cfg.top_k < logits.shape[-1]:
        logits, ids = torch.topk(logits, cfg.top_k, dim=-1)
    if 0 < cfg.top_p < 1:
        if ids is None:
            logits, ids = torch.sort(logits, descending=True, dim=-1)
        probs = logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > cfg.top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop, float("-inf"))
    picked = draw(logits.softmax(-1), generator)
    return picked.squeeze(-1) if ids is None else ids.gather(-1, picked).squeeze(-1)


def draw(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """One column per row of [B, V] probabilities, [B, 1], by inverting the cumulative sum at one
    uniform draw per row. torch.multinomial draws an exponential for every column instead: at
    batch 32 over a 49k vocabulary that was 13.7 ms of a 67 ms decode step here. `generator` is
    one torch.Generator for the batch, or one per row (a row's draw then ignores its batch mates)."""
    if isinstance(generator, (list, tuple)):
        u = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generator])
    else:
        u = torch.rand(probs.shape[0], generator=generator, device=probs.device)
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    # strictly below the total, so the first column whose cumulative sum exceeds it exists and has
    # a probability above zero (a filtered-out column adds nothing, so it is never the first)
    target = torch.minimum(u[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True)


class BatchGenerator:
    """Generates responses for batches of token-id prompts with one model.

    `prefix_cache_mb` bounds the memory kept for prefix reuse between calls (0 turns reuse off;
    every prompt is then prefilled in full, still batched). `weights()`, when given, returns the
    model to run at the start of each call (it may reset the cache, so it is asked first).
    `fast_decode` runs decode steps through decode_step.py where the model allows it; there,
    `share_reads` reads the cached positions several rows hold alike once per step (off: per row,
    bit for bit as the model's forward would).
    """

    def __init__(self, model, tokenizer, eos_token_ids: Sequence[int], prefix_cache_mb: int = 2048,
                 weights: Callable[[], object] | None = None, fast_decode: bool = True, share_reads: bool = True):
        self.model = model
        self.share_reads = share_reads
        self.weights = weights  # returns the model to run (e.g. a bf16 copy); default: `model`
        self._active = model
        self.fast_decode = fast_decode
        self._step = None  # the active model's DecodeStep, or None: its forward decodes
        self.decode_path = ""  # which path the last call decoded with, and why
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
        order, prompts, matches, cache, mask, pos, input_ids = self._prepare([list(p) for p in prompts], keys,
                                                                              cfg.max_new_tokens)
        keys = [keys[i] for i in order]
        if isinstance(generator, (list, tuple)):
            generator = [generator[i] for i in order]
        with self._eval_mode():
            logits = chunked_prefill(self._forward, input_ids, mask, pos, cache)
            if self.store.enabled:
                self._remember_prompts(prompts, keys, cache, mask)
            outputs = self._decode(logits, cache, mask, pos, cfg, generator, len(prompts), should_stop)
        results: list[Generation | None] = [None] * len(prompts)
        for i, prompt, (_, reused), (ids, finished) in zip(order, prompts, matches, outputs):
            self.store.hit_tokens += reused
            self.store.computed_tokens += len(prompt) - reused
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results[i] = Generation(ids, text, len(prompt), reused, finished)
        return results

    @torch.no_grad()
    def next_token_logits(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """The logits after each prompt, [B, V] float32: one forward pass that reuses the shared
        root's keys/values (a batch of prompts with one preamble prefills only what differs)."""
        order, prompts, _, cache, mask, pos, input_ids = self._prepare([list(p) for p in prompts],
                                                                       [None] * len(prompts), 0)
        with self._eval_mode():
            logits = chunked_prefill(self._forward, input_ids, mask, pos, cache).float()
        return logits[torch.tensor(order).argsort().to(logits.device)]  # back in the caller's order

    @torch.no_grad()
    def tree_log_probs(self, prompts: Sequence[Sequence[int]], tree: TokenTree, columns: Sequence[int],
                       deeper: Callable[[torch.Tensor], Sequence[int]] | None = None) -> torch.Tensor:
        """Log-probabilities of the vocabulary ids `columns` after each prompt and after each node
        of `tree` appended to every prompt: [B, 1 + len(tree), len(columns)] float32, position 0
        the prompt's end, 1 + i after node i. The tree's tokens follow the prompt's in the same
        forward pass, each attending to the prompt and to its own ancestors only (a 4D mask), so a
        branch costs one token rather than a prompt (what tree-shaped speculative decoding does).

        With `deeper`, that pass reads only the tree's first level (the nodes under the prompt's
        end); `deeper(read so far)` (rows in the caller's order, unread nodes at -inf) names the
        deeper nodes worth reading, parents before children, and one more pass over the whole
        batch reads them. Nodes it leaves out stay at -inf."""
        size = len(tree.tokens)
        order, prompts, _, cache, mask, pos, input_ids = self._prepare(
            [list(p) for p in prompts], [None] * len(prompts), 0, reserve=size)
        batch, device = len(prompts), input_ids.device
        back = torch.tensor(order).argsort().to(device)  # batch row -> caller's order
        tokens = torch.tensor(tree.tokens, dtype=torch.long, device=device)
        depths = torch.tensor(tree.depths(), dtype=torch.long, device=device)
        ancestors = tree.ancestors().to(device)
        cols = torch.tensor(list(columns), device=device)
        dtype = next(self._active.parameters()).dtype
        last = pos[:, -1:]
        read = torch.full((batch, 1 + size, len(cols)), float("-inf"), device=device)
        fed: list[int] = []  # tree nodes in the cache, in the order they follow the prompt

        def log_probs(ids, mask2d, positions, rows_cache, nodes: list[int], with_prompt_end: bool):
            width = ids.shape[1]
            keep = torch.arange(width - len(nodes) - int(with_prompt_end), width, device=device)
            reads = ancestors[nodes][:, fed + nodes]
            out = self._active(input_ids=ids, attention_mask=tree_attention(mask2d, width, reads, dtype),
                               position_ids=positions, **with_cache(rows_cache), use_cache=True, logits_to_keep=keep)
            logits = out.logits.float()
            return logits[..., cols] - torch.logsumexp(logits, -1, keepdim=True)

        def feed(nodes: list[int], ids, positions, mask2d, with_prompt_end: bool) -> torch.Tensor:
            """Read `nodes` after `ids` (the prompts' new tokens, or none); returns the 2D mask grown by them."""
            index = torch.tensor(nodes, dtype=torch.long, device=device)
            ids = torch.cat([ids, tokens[index].expand(batch, len(nodes))], 1)
            positions = torch.cat([positions, last + depths[index]], 1)
            mask2d = torch.cat([mask2d, mask2d.new_ones((batch, len(nodes)))], 1)
            run = lambda i, m, p, c: log_probs(i, m, p, c, nodes, with_prompt_end)  # noqa: E731
            out = chunked_prefill(run, ids, mask2d, positions, cache) if with_prompt_end else run(ids, mask2d, positions, cache)
            if with_prompt_end:
                read[:, 0] = out[:, 0]
            read[:, 1 + index] = out[:, int(with_prompt_end):]
            fed.extend(nodes)
            return mask2d

        first = list(range(size)) if deeper is None else [i for i, p in enumerate(tree.parents) if p < 0]
        with self._eval_mode():
            mask = feed(first, input_ids, pos, mask, True)
            if deeper is not None:
                more, known = [n for n in deeper(read[back]) if n not in fed], set(fed)
                for n in more:
                    if tree.parents[n] >= 0 and tree.parents[n] not in known:
                        raise ValueError(f"tree node {n} is to be read before its parent")
                    known.add(n)
                if more:
                    feed(more, input_ids[:, :0], pos[:, :0], mask, False)
        return read[back]

    # -- building the batch ---------------------------------------------------------------

    def _prepare(self, prompts: list[list[int]], keys: list, max_new_tokens: int, reserve: int = 0):
        """Pick the model to run (asked first: it may reset the cache), refresh the prefixes the
        batch shares, and lay the batch out over the best cached prefix of each row, rows ordered
        by how many new tokens they bring (the prefill runs rows of like length together).
        Returns that order (batch row -> prompt index), the prompts and matches in it, and the
        batch."""
        self._active = self.weights() if self.weights is not None else self.model
        # looked up per call, not cached: LoRA may have been injected into the same model object
        self._step, why = decode_step_for(self._active) if self.fast_decode else (None, "fast_decode is off")
        self.decode_path = "decode_step" if self._step is not None else f"forward ({why})"
        if self.store.enabled:
            self._refresh_root(prompts)
            self._refresh_groups(prompts, keys)
        matches = [self.store.best_match(k, p) if self.store.enabled else (None, 0) for k, p in zip(keys, prompts)]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) - matches[i][1])
        prompts, matches = [prompts[i] for i in order], [matches[i] for i in order]
        return (order, prompts, matches, *self._build_batch(prompts, matches, max_new_tokens, reserve))

    @contextlib.contextmanager
    def _eval_mode(self):
        was_training = self._active.training
        self._active.eval()
        try:
            yield
        finally:
            self._active.train(was_training)

    def _refresh_root(self, prompts: list[list[int]]) -> None:
        """Make the shared root the longest prefix common to this batch, if it is worth it."""
        lcp = prompts[0][: min(batch_prefix_length(prompts), min(len(p) for p in prompts) - 1)]
        root = self.store.root
        if len(lcp) < MIN_ROOT_TOKENS or (root is not None and root.tokens == tuple(lcp)):
            return
        if root is not None and common_prefix_length(root.tokens, lcp) >= len(lcp) - MIN_ROOT_TOKENS:
            return  # the current root already covers (almost) all of it
        device = self.device
        ids = torch.tensor([lcp], device=device)
        out = self._active(input_ids=ids, **with_cache(DynamicCache()), use_cache=True, logits_to_keep=1)
        layers = returned_cache(out).layers
        self.store.set_root(PrefixEntry(tuple(lcp), [l.keys.clone() for l in layers], [l.values.clone() for l in layers]))

    def _refresh_groups(self, prompts: list[list[int]], keys) -> None:
        """Prefixes that several rows share beyond the root (the games of one extraction run
        all carry that run's experience) are prefilled once, from the root or from a shorter
        such prefix, for this batch."""
        self.store.groups = []
        if len(prompts) < 2:
            return
        # what the root holds of this batch: a root kept from an earlier call may run past it
        root = self.store.root
        root_len = min(common_prefix_length(root.tokens, p) for p in prompts) if root is not None else 0
        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
        shared = [0] * len(prompts)  # each row's longest prefix in common with another row
        for a, b in zip(order, order[1:]):
            n = common_prefix_length(prompts[a], prompts[b])
            shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
        wanted: dict[tuple, int] = {}
        for i, n in enumerate(shared):
            n = min(n, len(prompts[i]) - 1)
            if n < root_len + MIN_ROOT_TOKENS:
                continue
            _, have = self.store.best_match(keys[i], prompts[i])
            if have < n - MIN_ROOT_TOKENS:  # the row's own game cache does not already hold it
                prefix = tuple(prompts[i][:n])
                wanted[prefix] = wanted.get(prefix, 0) + 1
        groups = [list(p) for p, rows in wanted.items() if rows > 1]
        if not groups:
            return
        # what those prefixes share among themselves (one experience under several boards) is
        # prefilled first, once, and they start from it; rows find it among the groups too
        self._refresh_groups(groups, [None] * len(groups))
        inner = self.store.groups
        matches = [self.store.best_match(None, g) for g in groups]
        cache, mask, pos, input_ids = self._build_batch(groups, matches, 0)
        chunked_prefill(self._forward, input_ids, mask, pos, cache)
        self.store.groups = inner + [_row_entry(g, cache, mask, i) for i, g in enumerate(groups)]

    def _build_batch(self, prompts, matches, max_new_tokens: int, reserve: int = 0):
        """The batch over each row's cached prefix; the cache has room for `max_new_tokens`
        sampled tokens and `reserve` more fed by the caller."""
        device = self.device
        batch = len(prompts)
        reuse = [n for _, n in matches]
        new_len = max(len(p) - n for p, n in zip(prompts, reuse))
        # positions several rows hold alike first (decode steps read them once), then each row's
        # own past, left-padded
        use_layout = max_new_tokens > 0 and self._step is not None and self.share_reads
        layout = self._shared_layout(prompts, matches) if use_layout else SharedLayout()
        ends = layout.row_ends(batch)
        own = [n - end for n, end in zip(reuse, ends)]
        past_len = layout.own_start + max(own)
        input_ids = torch.full((batch, new_len), self.pad_id, dtype=torch.long)
        pos = torch.zeros((batch, new_len), dtype=torch.long)
        mask = torch.zeros((batch, past_len + new_len), dtype=torch.long)
        for i, (p, n) in enumerate(zip(prompts, reuse)):
            fresh = p[n:]
            input_ids[i, new_len - len(fresh) :] = torch.tensor(fresh)
            pos[i, new_len - len(fresh) :] = torch.arange(n, n + len(fresh))
            mask[i, : ends[i]] = 1
            mask[i, past_len - own[i] : past_len] = 1
            mask[i, past_len + new_len - len(fresh) :] = 1
        layers = []
        capacity = past_len + new_len + max_new_tokens + reserve + 1
        if past_len > 0:
            template = next(e for e, n in matches if e is not None and n > 0)
            for layer in range(len(template.keys)):
                # the cache's own buffers, filled in place (zeros: padding must stay finite under the mask)
                k0, v0 = template.keys[layer], template.values[layer]
                keys = k0.new_zeros((batch, k0.shape[1], capacity, k0.shape[3]))
                values = v0.new_zeros((batch, v0.shape[1], capacity, v0.shape[3]))
                for i, (entry, n) in enumerate(matches):
                    if n > 0:
                        keys[i, :, : ends[i]] = entry.keys[layer][0, :, : ends[i]]
                        values[i, :, : ends[i]] = entry.values[layer][0, :, : ends[i]]
                        keys[i, :, past_len - own[i] : past_len] = entry.keys[layer][0, :, ends[i] : n]
                        values[i, :, past_len - own[i] : past_len] = entry.values[layer][0, :, ends[i] : n]
                layers.append(BufferLayer.over(keys, values, past_len))
        if layers:
            cache = BufferCache(layers, layout)
        else:
            cache = BufferCache([])
            cache.layer_class_to_replicate = _lazy_buffer_layer(capacity)
        return cache, mask.to(device), pos.to(device), input_ids.to(device)

    def _shared_layout(self, prompts, matches) -> SharedLayout:
        """The positions all rows hold alike, then groups of rows holding more alike beyond them
        (the games of one experience): rows sorted by prompt, neighbours sharing at least
        MIN_SHARED_TOKENS more form a group, kept when it spares reading MIN_GROUP_SAVING
        positions per step; none of it when all together spare fewer than MIN_SPLIT_SAVING.
        Only positions every member has cached count. Equal tokens mean equal keys/values
        (attention is causal) up to rounding: prefills with other padding or batch-mates may
        round apart, so one row's copy stands for all."""
        reuse = [n for _, n in matches]
        if len(prompts) < 2:
            return SharedLayout()
        shared = min(min(reuse), batch_prefix_length(prompts))
        shared = shared if shared >= MIN_SHARED_TOKENS else 0
        group_of_row, ends = [-1] * len(prompts), []

        def close(run: list[int], end: int) -> None:
            if (len(run) - 1) * (end - shared) >= MIN_GROUP_SAVING:
                for row in run:
                    group_of_row[row] = len(ends)
                ends.append(end)

        order = sorted(range(len(prompts)), key=lambda i: prompts[i])
        run, end = [order[0]], shared
        for a, b in zip(order, order[1:]):
            common = min(common_prefix_length(prompts[a], prompts[b]), reuse[a], reuse[b])
            if common - shared >= MIN_SHARED_TOKENS:
                end = common if len(run) == 1 else min(end, common)
                run.append(b)
            else:
                close(run, end)
                run, end = [b], shared
        close(run, end)
        layout = SharedLayout(shared, group_of_row if ends else None, ends, max(ends, default=shared))
        # every row's own positions come after the longest group's span: rows in no group with
        # long pasts would pad every row's cache out (more memory, longer prefills); then only
        # what all rows hold is read once
        own = max(n - end for n, end in zip(reuse, layout.row_ends(len(prompts))))
        if layout.own_start + own > max(reuse) + max(reuse) // 8:
            layout = SharedLayout(shared, own_start=shared)
        spared = (len(prompts) - 1) * layout.shared + sum(
            (layout.group_of_row.count(g) - 1) * (end - shared) for g, end in enumerate(layout.group_ends))
        return layout if spared >= MIN_SPLIT_SAVING else SharedLayout()

    # -- running the model ----------------------------------------------------------------

    def _forward(self, input_ids, mask, pos, cache):
        out = self._active(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=pos,
            **with_cache(cache),
            use_cache=True,
            logits_to_keep=last_positions(input_ids.shape[1], 1, input_ids.device),
        )
        return out.logits[:, -1, :]

    def _remember_prompts(self, prompts, keys, cache: BufferCache, mask) -> None:
        """Store each keyed row's prompt keys/values (the valid positions of its row)."""
        for i, (prompt, key) in enumerate(zip(prompts, keys)):
            if key is None:
                continue
            self.store.put(key, _row_entry(prompt, cache, mask, i))

    def _decode(self, logits, cache, mask, pos, cfg, generator, batch, should_stop):
        """Sample up to max_new_tokens per row. A finished row stays in the batch (fed padding,
        never sampled, so its random stream does not move) until a quarter of the batch has
        finished; then the cache is compacted. Compacting at every finish would copy the whole
        cache up to once per row."""
        device = self.device
        eos = self.eos_ids.to(device)
        outputs: list[list[int]] = [[] for _ in range(batch)]
        finished = [False] * batch
        rows = torch.arange(batch, device=device)  # original row index of each batch row
        alive = torch.ones(batch, dtype=torch.bool, device=device)
        next_pos = pos[:, -1:] + 1
        for step in range(cfg.max_new_tokens):
            live = alive.nonzero().squeeze(-1)
            live_rows = rows[live].tolist()
            row_generators = [generator[r] for r in live_rows] if isinstance(generator, (list, tuple)) else generator
            sampled = sample_next(logits[live], cfg, row_generators)
            done_now = torch.isin(sampled, eos)
            for row, tok, d in zip(live_rows, sampled.tolist(), done_now.tolist()):
                outputs[row].append(tok)
                if d:
                    finished[row] = True
            alive[live[done_now]] = False
            if not bool(alive.any()) or step == cfg.max_new_tokens - 1:
                break
            if should_stop is not None and should_stop():
                break
            tokens = torch.full((rows.numel(),), self.pad_id, dtype=sampled.dtype, device=device)
            tokens[live] = sampled
            dead = rows.numel() - int(alive.sum())
            if dead * COMPACT_AT >= rows.numel():  # drop finished rows so stragglers decode alone
                keep = alive.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, tokens, mask, next_pos, alive = rows[keep], tokens[keep], mask[keep], next_pos[keep], alive[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = self.decode_one(tokens, mask, next_pos, cache)
            next_pos = next_pos + 1
        return [(ids, done) for ids, done in zip(outputs, finished)]

    def decode_one(self, tokens, mask, positions, cache) -> torch.Tensor:
        """[B, vocab] logits after one more token per row (`tokens` [B], `positions` [B, 1])."""
        if self._step is not None:
            return self._step(tokens, positions, mask, cache)
        return self._forward(tokens[:, None], mask, positions, cache)


@dataclass(frozen=True)
class TokenTree:
    """Tokens to read after a prompt, as a tree: node i is `tokens[i]` following node `parents[i]`
    (-1: the prompt's end); a parent comes before its children."""

    tokens: tuple[int, ...]
    parents: tuple[int, ...]

    def depths(self) -> list[int]:
        """Each node's distance from the prompt's end (1 for its children): its position offset."""
        depth: list[int] = []
        for parent in self.parents:
            depth.append(1 if parent < 0 else depth[parent] + 1)
        return depth

    def ancestors(self) -> torch.Tensor:
        """[n, n] bool: node i may read node j (j is i or one of its ancestors)."""
        n = len(self.tokens)
        reads = torch.eye(n, dtype=torch.bool)
        for i, parent in enumerate(self.parents):
            if parent >= 0:
                reads[i] |= reads[parent]
        return reads


def tree_attention(mask: torch.Tensor, width: int, reads: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive [B, 1, width, L] mask for `width` new tokens, the last n of them tree nodes,
    over a cache whose last m positions hold tree nodes (these n among them): causal over the 2D
    padding `mask` [B, L], except that a tree node reads, among the m, only those `reads` [n, m]
    says (its ancestors and itself). Every token reads itself, so a padding row stays finite."""
    length, (n, m) = mask.shape[1], reads.shape
    keys = torch.arange(length, device=mask.device)
    queries = torch.arange(length - width, length, device=mask.device)
    allowed = (keys[None, :] <= queries[:, None])[None] & mask[:, None, :].bool()
    allowed[:, width - n:, length - m:] = reads
    allowed |= (keys[None, :] == queries[:, None])[None]
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min)[:, None]


def _row_entry(tokens, cache: BufferCache, mask, i: int) -> PrefixEntry:
    """Row i's keys/values (its valid positions) as a stored prefix of `tokens`."""
    idx = mask[i].nonzero().squeeze(-1)  # indexing by a tensor copies: no clone needed
    return PrefixEntry(tuple(tokens), [layer.keys[i : i + 1, :, idx] for layer in cache.layers],
                       [layer.values[i : i + 1, :, idx] for layer in cache.layers])


def last_positions(length: int, keep: int, device=None):
    """`logits_to_keep` for the last `keep` of `length` positions, as an index tensor: the model
    then gathers those hidden states into a contiguous tensor. Given as an int, it slices them,
    and a strided slice sent through the output head made CPU bf16 matmuls copy the whole
    head once per row (seconds per prefill for a 49k vocabulary)."""
    if keep >= length:
        return keep
    return torch.arange(length - keep, length, device=device)


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
