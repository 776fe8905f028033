"""Projections that read the same input, computed as one matmul (in the inference copy).

q, k and v read one normed hidden state, gate and up another. At decode batch sizes a matmul
is bound by reading its weight, and one [960, 576] read ran 1.6-1.9x the three separate reads
on the AMX Xeon here (gate/up likewise), so the inference copy concatenates them. The model's
forward still calls q_proj, k_proj and v_proj: each becomes a `ProjectionSlice` of the shared
`FusedProjection`, which computes the whole product on the first call for an input and hands
out the other slices from it. For up to ~190 rows the fused product is bit-identical to the
separate ones (oneDNN blocks the output columns, not the inner dimension); for a longer prefill
bf16 results may differ in the last bit. Only the bf16 inference copy is fused: the master
weights, LoRA wrapping (which finds q_proj and friends by name) and training never see it.
"""

from __future__ import annotations

import torch
from torch import nn

from .packed_linear import PackedLinear

GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj"), "mlp": ("gate_proj", "up_proj")}


class FusedProjection(nn.Module):
    """One linear layer standing for several; remembers its last product until every slice
    has been read, so a forward calling each projection on the same input multiplies once."""

    def __init__(self, linear: nn.Module, sizes: list[int]):
        super().__init__()
        self.linear = linear
        self.sizes = sizes
        self._input = None
        self._parts: list[torch.Tensor | None] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def part(self, x: torch.Tensor, index: int) -> torch.Tensor:
        if x is not self._input or self._parts[index] is None:
            self._input = x
            self._parts = list(self.linear(x).split(self.sizes, dim=-1))
        part, self._parts[index] = self._parts[index], None
        if all(p is None for p in self._parts):
            self._input = None  # every slice handed out: hold no tensors between calls
        return part

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        if isinstance(self.linear, PackedLinear):
            self.linear.set_weight(weight)
        else:
            self.linear.weight.copy_(weight)
        if bias is not None:
            self.linear.bias.copy_(bias)


class ProjectionSlice(nn.Module):
    """What was one of the projections: its columns of the fused product."""

    def __init__(self, fused: FusedProjection, index: int):
        super().__init__()
        self.fused = [fused]  # a list: the owner registers the fused module once, not per slice
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused[0].part(x, self.index)


def fused_parts(*projections: nn.Module) -> FusedProjection | None:
    """The FusedProjection behind `projections`, if they are exactly its slices in order."""
    if not all(isinstance(p, ProjectionSlice) for p in projections):
        return None
    fused = projections[0].fused[0]
    if any(p.fused[0] is not fused for p in projections) or [p.index for p in projections] != list(range(len(fused.sizes))):
        return None
    return fused


def fuse_projections(model: nn.Module, pack: bool) -> dict[str, list[str]]:
    """Replace each attention's q/k/v and each MLP's gate/up linear layers by slices of one
    (packed, if `pack`) linear layer. Returns each fused module's name with the names of the
    modules it stands for, in order (their weights concatenate to its weight)."""
    fused_names: dict[str, list[str]] = {}
    for owner_name, owner in list(model.named_modules()):
        leaf = owner_name.rpartition(".")[2]
        names = GROUPS.get(leaf)
        # plain linear layers only: packed ones keep no weights to concatenate
        if names is None or not all(type(getattr(owner, n, None)) is nn.Linear for n in names):
            continue
        parts = [getattr(owner, n) for n in names]
        with_bias = [p.bias is not None for p in parts]
        if len(set(with_bias)) != 1:
            continue
        weight = torch.cat([p.weight.detach() for p in parts])
        bias = torch.cat([p.bias.detach() for p in parts]) if with_bias[0] else None
        if pack:
            linear = PackedLinear(weight, bias)
        else:
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
            linear.weight.data, linear.weight.requires_grad = weight, False
            if bias is not None:
                linear.bias.data, linear.bias.requires_grad = bias, False
        fused = FusedProjection(linear, [p.out_features for p in parts])
        fused_leaf = "fused_" + "_".join(n.removesuffix("_proj") for n in names)
        setattr(owner, fused_leaf, fused)
        for index, n in enumerate(names):
            setattr(owner, n, ProjectionSlice(fused, index))
        prefix = f"{owner_name}." if owner_name else ""
        fused_names[prefix + fused_leaf] = [prefix + n for n in names]
    return fused_names
