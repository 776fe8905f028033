"""Packed bf16 linears: the same numbers as plain bf16 ones, refreshed with the weights, and a
LanguageModel whose bf16 copy is packed samples exactly what the unpacked copy samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oel_engine.config import ModelConfig, SamplingConfig
from oel_engine.model import lm as lm_module
from oel_engine.model.inference import InferenceCopy
from oel_engine.model.lm import LanguageModel
from oel_engine.model.packed_linear import PackedLinear, pack_linears, packing_available
from tests.support import build_tiny_model

pytestmark = pytest.mark.skipif(not packing_available(), reason="no oneDNN bf16 linear ops here (this torch build, or this CPU)")


@pytest.mark.parametrize("rows", [1, 3, 16, 64])
def test_a_packed_linear_computes_exactly_what_the_plain_bf16_one_does(rows):
    torch.manual_seed(rows)
    plain = nn.Linear(96, 200, bias=True).to(torch.bfloat16)
    packed = PackedLinear(plain.weight, plain.bias)
    for x in (torch.randn(rows, 96).bfloat16(), torch.randn(2, rows, 96).bfloat16()):
        assert torch.equal(packed(x), plain(x))


def test_packing_replaces_only_bf16_linears_and_keeps_the_embedding(tiny_tokenizer):
    model = build_tiny_model(len(tiny_tokenizer)).to(torch.bfloat16)
    linears = sum(type(m) is nn.Linear for m in model.modules())
    names = pack_linears(model)
    assert len(names) == linears and "lm_head" in names
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16


def test_the_packed_copy_follows_weight_changes(tiny_tokenizer):
    source = build_tiny_model(len(tiny_tokenizer))
    plain, packed = InferenceCopy(source, torch.bfloat16), InferenceCopy(source, torch.bfloat16, pack=True)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    for version in range(2):
        plain.refresh(source, version)
        packed.refresh(source, version)
        with torch.no_grad():
            assert torch.equal(packed.model(ids).logits, plain.model(ids).logits)
            source.model.layers[0].mlp.up_proj.weight.mul_(3.0)  # an optimizer step, say
    with torch.no_grad():
        before = packed.model(ids).logits
        packed.refresh(source, 2)
        assert not torch.equal(packed.model(ids).logits, before)


def test_a_packed_model_samples_what_the_plain_bf16_copy_samples(tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(lm_module, "packing_pays", lambda: True)
    prompts = [[{"role": "user", "content": f"Board {i}: what action do you take?"}] for i in range(5)]
    outputs = {}
    for pack in (False, True):
        config = ModelConfig(model="tiny", inference_dtype="bf16", pack_weights=pack)
        lm = LanguageModel(build_tiny_model(len(tiny_tokenizer), seed=1, init_range=0.2), tiny_tokenizer, "tiny", config)
        assert any(isinstance(m, PackedLinear) for m in lm.inference_model().modules()) == pack
        assert ("packed" in lm.inference_precision.reason) == pack
        greedy = lm.generate(prompts, SamplingConfig(temperature=0, max_new_tokens=12))
        streams = [torch.Generator().manual_seed(7 + i) for i in range(len(prompts))]
        sampled = lm.generate(prompts, SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12),
                              generator=streams)
        outputs[pack] = [g.token_ids for g in greedy + sampled]
    assert outputs[True] == outputs[False]
