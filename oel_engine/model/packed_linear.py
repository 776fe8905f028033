"""bf16 linear layers with their weights pre-arranged for oneDNN, for sampling on a CPU.

A decode step multiplies a few rows by every weight matrix once, so it is bound by reading the
weights. `torch.nn.functional.linear` on bf16 weights hands oneDNN a plain [out, in] matrix,
which it re-blocks on every call; packing the matrix once (the layout Inductor's weight
freezing uses) skips that. On the idle AMX Xeon here a packed decode-step linear ran 1.2-1.3x a
plain one and a whole batch-16 step 1.03x (the rest of the step is attention and small ops), with
bit-identical results (both are oneDNN's bf16 kernels; tests/engine/test_packed_linear.py holds them
equal). Used only on the bf16 inference copy and only where it measures faster
(`measure_packing`); the master weights and training never see it.
"""

from __future__ import annotations

import functools
import time

import torch
from torch import nn

from .precision import interleaved_best

ROWS_HINT = 16  # the decode batch the layout is chosen for; any row count runs on it
CLEARLY_FASTER = 1.1  # packing must beat the plain bf16 linear by this factor to be used


@functools.lru_cache(maxsize=None)
def packing_available() -> bool:
    """The oneDNN ops exist in this torch build (CPU builds with mkldnn) and run on this CPU: their
    bf16 path needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT, and an AVX2-only EPYC refuses it."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if not (torch.backends.mkldnn.is_available() and mkldnn is not None
            and hasattr(mkldnn, "_reorder_linear_weight") and hasattr(mkldnn, "_linear_pointwise")):
        return False
    try:
        pack_weight(torch.zeros(8, 8))
    except RuntimeError:
        return False
    return True


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(torch.bfloat16).contiguous(), ROWS_HINT)


class PackedLinear(nn.Module):
    """`nn.Linear` in bf16 over a packed weight. The plain weight is not kept (it would double the
    copy's memory): `set_weight` repacks from a new one."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("packed", pack_weight(weight), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor) -> None:
        self.packed = pack_weight(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, packed"


def pack_linears(model: nn.Module) -> list[str]:
    """Replace every bf16 CPU `nn.Linear` of `model` by a PackedLinear; returns their names."""
    names = [name for name, m in model.named_modules()
             if type(m) is nn.Linear and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"]
    for name in names:
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        linear = getattr(owner, leaf)
        setattr(owner, leaf, PackedLinear(linear.weight, linear.bias))
    return names


@functools.lru_cache(maxsize=None)
def measure_packing(hidden: int = 576, inter: int = 1536) -> float:
    """How many times faster a packed bf16 decode-step linear runs than a plain one on this CPU
    (interleaved tries, fastest of each, as precision.py times bf16; 0.0 where packing is
    unavailable or fails)."""
    if not packing_available():
        return 0.0
    weights = [torch.randn(inter, hidden).to(torch.bfloat16) for _ in range(8)]  # more than the caches hold
    x = torch.randn(ROWS_HINT, hidden).to(torch.bfloat16)
    try:
        packed = [PackedLinear(w) for w in weights]
    except RuntimeError:
        return 0.0

    def timed(run) -> float:
        started = time.perf_counter()
        with torch.no_grad():
            for _ in range(4):
                run()
        return time.perf_counter() - started

    def plain():
        for w in weights:
            torch.nn.functional.linear(x, w)

    def fast():
        for layer in packed:
            layer(x)

    plain_seconds, packed_seconds = interleaved_best(lambda: timed(plain), lambda: timed(fast))
    return plain_seconds / packed_seconds
