"""A bf16 copy of the weights for sampling and probing, when the CPU runs bf16 faster.

The master weights stay float32 (training, LoRA merges: a small LoRA delta folded into bf16
weights would round away). Generation only reads weights, and on a CPU with native bf16 dot
products a bf16 linear runs 2-3x a float32 one at decode batch sizes, so generation runs on a
bf16 copy that holds exactly what the master model computes with: base weights plus the active
LoRA deltas (none while the adapter is switched off, e.g. for the teacher). The copy is rebuilt
only when the weights change (`LanguageModel.weights_changed`), which is once per optimizer step.
"""

from __future__ import annotations

import copy

import torch

from .fused_projections import fuse_projections
from .packed_linear import pack_linears


def effective_weights(model) -> dict[str, torch.Tensor]:
    """What `model` computes with, by the plain model's parameter names: for a PEFT-wrapped
    model each LoRA layer's base weight plus its active adapters' deltas (unless the adapters
    are switched off or already merged)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    lora_layers = {name: m for name, m in base.named_modules() if hasattr(m, "get_delta_weight") and hasattr(m, "base_layer")}
    out: dict[str, torch.Tensor] = {}
    for name, param in base.named_parameters():
        if "lora_" in name:
            continue
        owner, _, leaf = name.rpartition(".")
        if owner.endswith(".base_layer") and owner[: -len(".base_layer")] in lora_layers:
            layer_name = owner[: -len(".base_layer")]
            layer = lora_layers[layer_name]
            value = param
            if leaf == "weight" and not layer.disable_adapters and not layer.merged:
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A:
                        value = value + layer.get_delta_weight(adapter)
            out[f"{layer_name}.{leaf}"] = value
        else:
            out[name] = param
    return out


class InferenceCopy:
    """A copy of a plain (un-wrapped) model in `dtype`, refreshed from the live weights on demand.
    With `fuse`, each attention's q/k/v and each MLP's gate/up run as one matmul
    (fused_projections.py); with `pack`, its bf16 linear layers hold oneDNN-packed weights
    (packed_linear.py)."""

    def __init__(self, plain_model, dtype: torch.dtype, pack: bool = False, fuse: bool = False):
        self.model = copy.deepcopy(plain_model).to(dtype)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        # modules whose weights are rebuilt from the source's rather than copied parameter by
        # parameter: fused module -> the modules it stands for; packed module -> its weight's name
        self.fused = fuse_projections(self.model, pack) if fuse else {}
        self.packed = self._pack() if pack else {}
        self._key = None

    def _pack(self) -> dict[str, str]:
        """Pack the linear layers; returns each one's weight by the name the parameter list gives
        it (a tied output head is listed once, as the input embedding)."""
        first_name = {id(p): name for name, p in reversed(list(self.model.named_parameters(remove_duplicate=False)))}
        weight_names = {name: first_name[id(m.weight)] for name, m in self.model.named_modules()
                        if isinstance(m, torch.nn.Linear)}
        return {name: weight_names[name] for name in pack_linears(self.model)}

    @torch.no_grad()
    def refresh(self, source, key) -> bool:
        """Copy `source`'s effective weights in, unless `key` says they are the ones held;
        returns whether it copied."""
        if key == self._key:
            return False
        weights = effective_weights(source)
        fused_prefixes = tuple(f"{name}." for name in self.fused)
        params = {name: p for name, p in self.model.named_parameters() if not name.startswith(fused_prefixes)}
        missing = set(params) - set(weights)
        if missing:
            raise ValueError(f"the bf16 copy has parameters the model does not: {sorted(missing)[:3]}")
        for name, target in params.items():
            target.copy_(weights[name])
        for name, parts in self.fused.items():
            biases = [weights.get(f"{part}.bias") for part in parts]
            self.model.get_submodule(name).set_weight(
                torch.cat([weights[f"{part}.weight"] for part in parts]),
                None if biases[0] is None else torch.cat(biases))
        for name, weight_name in self.packed.items():
            self.model.get_submodule(name).set_weight(weights[weight_name])
        self._key = key
        return True
