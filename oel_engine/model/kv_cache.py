"""KV-cache pieces for batched generation: a preallocated cache and a per-game prefix store.

Why preallocate: transformers' DynamicLayer grows by `torch.cat` at every decode step, which
copies the whole cache each token; with dozens of games and ~700-token prompts that copy costs
as much as the model itself on a CPU. `BufferLayer` writes new keys/values into a buffer sized
for the whole generation and hands the model a view.

Why a prefix store: every turn prompt of a game extends the previous one (same preamble, the
game history so far, one more board), and all games share the preamble. Keeping each game's
prompt keys/values lets the next turn prefill only the new tokens, like vLLM's prefix caching.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import torch
from transformers.cache_utils import Cache, DynamicLayer


# A model's forward takes and returns its cache as `cache` in the transformers this project pins
# (`past_key_values` is deprecated there and goes away in 5.40) and as `past_key_values` in the
# 5.x releases before the rename: read once from the installed transformers.
@functools.cache
def cache_keyword() -> str:
    from transformers import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


def with_cache(cache) -> dict:
    """The forward's keyword argument carrying `cache`."""
    return {cache_keyword(): cache}


def returned_cache(output):
    """The cache a forward returned."""
    return getattr(output, cache_keyword())


class BufferLayer(DynamicLayer):
    """A cache layer over a preallocated [batch, heads, capacity, dim] buffer."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        batch, heads, length, dim = keys.shape
        key_buffer = keys.new_zeros((batch, heads, capacity, dim))
        value_buffer = values.new_zeros((batch, values.shape[1], capacity, values.shape[-1]))
        key_buffer[:, :, :length] = keys
        value_buffer[:, :, :length] = values
        self._hold(key_buffer, value_buffer, length)

    @classmethod
    def over(cls, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> "BufferLayer":
        """A layer that takes these [batch, heads, capacity, dim] buffers as its own, holding
        their first `length` positions."""
        layer = cls.__new__(cls)
        DynamicLayer.__init__(layer)
        layer._hold(key_buffer, value_buffer, length)
        return layer

    def _hold(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        self._kbuf, self._vbuf, self._length = key_buffer, value_buffer, length
        self.dtype, self.device, self.is_initialized = key_buffer.dtype, key_buffer.device, True
        self._sync_views()

    def rows(self, start: int, stop: int, length: int) -> "BufferLayer":
        """Rows [start, stop) as a layer over this buffer (what it writes lands here), holding
        `length` positions; it must not grow (a grown buffer would be its own)."""
        return BufferLayer.over(self._kbuf[start:stop], self._vbuf[start:stop], length)

    def _sync_views(self) -> None:
        self.keys = self._kbuf[:, :, : self._length]
        self.values = self._vbuf[:, :, : self._length]

    def update(self, key_states, value_states, *args, **kwargs):
        new = key_states.shape[-2]
        end = self._length + new
        if end > self._kbuf.shape[2]:  # grow geometrically rather than fail
            extra = max(end - self._kbuf.shape[2], self._kbuf.shape[2] // 2)
            pad = lambda buf: torch.cat([buf, buf.new_zeros(buf.shape[:2] + (extra,) + buf.shape[3:])], 2)
            self._kbuf, self._vbuf = pad(self._kbuf), pad(self._vbuf)
        self._kbuf[:, :, self._length : end] = key_states
        self._vbuf[:, :, self._length : end] = value_states
        self._length = end
        self._sync_views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length

    def seek(self, length: int) -> None:
        """Hold `length` positions (after row views wrote past the current end)."""
        self._length = length
        self._sync_views()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._kbuf = self._kbuf[indices]
        self._vbuf = self._vbuf[indices]
        self._sync_views()


@dataclass
class SharedLayout:
    """Which cached positions several rows hold alike, so decode steps read them once:
    [0, shared) in every row; then, for the rows of group g, [shared, group_ends[g]) (the rest of
    that span is padding for other rows); each row's own positions from `own_start` on."""

    shared: int = 0
    group_of_row: list[int] | None = None  # each row's group, or -1
    group_ends: list[int] = field(default_factory=list)
    own_start: int = 0

    @property
    def splits(self) -> bool:
        """Whether decode steps read any positions once for several rows."""
        return self.shared > 0 or self.group_of_row is not None

    def row_ends(self, batch: int) -> list[int]:
        """Per row, where the positions it holds alike with others end (its own begin after)."""
        return [self.group_ends[g] if g >= 0 else self.shared for g in (self.group_of_row or [-1] * batch)]

    def select(self, indices: list[int]) -> None:
        if self.group_of_row is not None:
            self.group_of_row = [self.group_of_row[i] for i in indices]

    def groups(self) -> list[tuple[slice | list[int], int, int]]:
        """(its rows as a slice when contiguous, else a list; a row of it; its span's end) per
        group that still has rows."""
        rows: dict[int, list[int]] = {}
        for row, group in enumerate(self.group_of_row or []):
            if group >= 0:
                rows.setdefault(group, []).append(row)
        out = []
        for group, members in rows.items():
            contiguous = members[-1] - members[0] + 1 == len(members)
            out.append((slice(members[0], members[-1] + 1) if contiguous else members, members[0], self.group_ends[group]))
        return out


class BufferCache(Cache):
    """A transformers Cache made of BufferLayers (one per decoder layer), and the positions its
    rows hold alike (`layout`)."""

    def __init__(self, layers: list[BufferLayer], layout: SharedLayout | None = None):
        super().__init__(layers=layers)
        self.layout = layout or SharedLayout()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self.layout.select(indices.tolist())


@dataclass
class PrefixEntry:
    """The keys/values of one token sequence: per layer a [1, heads, len, dim] pair."""

    tokens: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def batch_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """The length of the prefix every sequence starts with."""
    n = len(sequences[0])
    for s in sequences[1:]:
        n = common_prefix_length(sequences[0][:n], s)
    return n


class PrefixStore:
    """Per-key prefix entries plus one shared root entry, bounded by a byte budget (LRU)."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[Hashable, PrefixEntry] = OrderedDict()
        self.root: PrefixEntry | None = None
        # prefixes shared by some rows of the current batch (e.g. one run's experience), longer
        # than the root; replaced at every batch
        self.groups: list[PrefixEntry] = []
        self.hit_tokens = 0
        self.computed_tokens = 0

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def best_match(self, key: Hashable | None, tokens: Sequence[int]) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with `tokens`, and that length (always < len(tokens))."""
        best, best_len = None, 0
        candidates = [self._entries.get(key) if key is not None else None, self.root, *self.groups]
        for entry in candidates:
            if entry is None:
                continue
            n = min(common_prefix_length(entry.tokens, tokens), len(tokens) - 1)
            if n > best_len:
                best, best_len = entry, n
        if key is not None and key in self._entries:
            self._entries.move_to_end(key)
        return best, best_len

    def put(self, key: Hashable, entry: PrefixEntry) -> None:
        if not self.enabled:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict()

    def set_root(self, entry: PrefixEntry) -> None:
        if self.enabled:
            self.root = entry

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self.root = None
        self.groups = []

    def _evict(self) -> None:
        total = sum(e.nbytes for e in self._entries.values()) + (self.root.nbytes if self.root else 0)
        while self._entries and total > self.budget_bytes:
            _, old = self._entries.popitem(last=False)
            total -= old.nbytes
