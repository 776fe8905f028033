"""The frozen weights held once in the autocast dtype while an adapter trains.

Under autocast every linear call casts its float32 weight to bf16, and autocast keeps casts only
of weights that need gradients: each teacher and student micro-batch re-reads all frozen float32
weights and writes a bf16 copy, and the student's backward holds its own. The base does not
change while an adapter trains, so a bf16 copy made once per round serves every pass with the
same numbers (the same round-to-nearest cast). The float32 masters stay for merging the adapter
and for the sampling copy, which read them outside these passes.
"""

from __future__ import annotations

import contextlib

import torch


class FrozenLinearsInDtype:
    """Swaps the weight of every frozen float32 `nn.Linear` (what autocast would cast) for a
    `dtype` copy inside `active()`."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        copies: dict[int, torch.nn.Parameter] = {}  # tied weights (embeddings / output head) share one
        self._swaps: list[tuple[torch.nn.Linear, torch.nn.Parameter, torch.nn.Parameter]] = []
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if not isinstance(module, torch.nn.Linear) or weight.requires_grad or weight.dtype != torch.float32:
                continue
            if id(weight) not in copies:
                copies[id(weight)] = torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)
            self._swaps.append((module, weight, copies[id(weight)]))
        self.nbytes = sum(p.numel() * p.element_size() for p in copies.values())

    def __len__(self) -> int:
        return len(self._swaps)

    @contextlib.contextmanager
    def active(self):
        for module, _, low in self._swaps:
            module.weight = low
        try:
            yield
        finally:
            for module, master, _ in self._swaps:
                module.weight = master
