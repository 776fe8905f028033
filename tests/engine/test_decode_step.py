"""The decode step computes exactly what the model's forward computes on the same cache, for
plain and fused/packed copies and the families it accepts, and refuses what it cannot reproduce."""

from __future__ import annotations

import copy

import pytest
import torch

from oel_engine.config import ModelConfig, SamplingConfig
from oel_engine.model import lm as lm_module
from oel_engine.model.decode_step import decode_step_for
from oel_engine.model.fused_projections import FusedProjection
from oel_engine.model.generation import BatchGenerator
from oel_engine.model.inference import InferenceCopy
from oel_engine.model.lm import LanguageModel
from oel_engine.model.packed_linear import packing_available
from tests.support import build_tiny_model


def family_model(family: str, vocab: int):
    """A tiny random model of `family` (qwen3: per-head q/k norms; qwen2: q/k/v biases)."""
    import transformers

    torch.manual_seed(5)
    sizes = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.2)
    if family == "qwen3":
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(head_dim=16, **sizes))
    elif family == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**sizes))
    elif family == "mha":  # as many key/value heads as query heads
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**sizes, "num_key_value_heads": 4}))
    else:
        model = build_tiny_model(vocab, seed=2, init_range=0.2)
    return model.eval()


def variants(model):
    """The model as generation may run it: itself, a bf16 copy fused, and fused and packed."""
    yield "plain", model
    yield "bf16 fused", InferenceCopy(model, torch.bfloat16, fuse=True).model
    if packing_available():
        yield "bf16 fused packed", InferenceCopy(model, torch.bfloat16, pack=True, fuse=True).model


def steps_both_ways(model, tokenizer, prompts, steps=6):
    """Prefill `prompts`, then decode `steps` greedy tokens twice from copies of one cache: with
    the decode step and with the model's forward. Returns both lists of per-step logits."""
    gen = BatchGenerator(model, tokenizer, [tokenizer.eos_token_id], prefix_cache_mb=0)
    _, cache, mask, pos, input_ids = gen._prepare(prompts, [None] * len(prompts), steps)
    step, why = decode_step_for(model)
    assert step is not None, why
    with torch.no_grad():
        first = gen._forward(input_ids, mask, pos, cache)
        runs = {}
        for name in ("step", "forward"):
            logits, run_cache, run_mask, next_pos, seen = first, copy.deepcopy(cache), mask, pos[:, -1:] + 1, []
            for _ in range(steps):
                tokens = logits.float().argmax(-1)
                run_mask = torch.cat([run_mask, run_mask.new_ones((run_mask.shape[0], 1))], dim=1)
                if name == "step":
                    logits = step(tokens, next_pos, run_mask, run_cache)
                else:
                    logits = gen._forward(tokens[:, None], run_mask, next_pos, run_cache)
                next_pos = next_pos + 1
                seen.append(logits)
            runs[name] = seen
    return runs["step"], runs["forward"]


@pytest.mark.parametrize("family", ["llama", "qwen3", "qwen2", "mha"])
@pytest.mark.parametrize("padded", [True, False])
def test_the_decode_step_computes_the_forwards_logits_bit_for_bit(family, padded, tiny_tokenizer):
    model = family_model(family, len(tiny_tokenizer))
    if padded:  # rows of different lengths: the padding mask path
        prompts = [[5 + i] * (7 + 3 * i) + [9, 10] for i in range(4)]
    else:  # every row the same length: no mask, SDPA expands the key/value heads
        prompts = [[5 + i, 6, 7, 8, 9, 10, 11] for i in range(3)]
    for name, variant in variants(model):
        if name != "plain":
            assert any(isinstance(m, FusedProjection) for m in variant.modules())
        fast, reference = steps_both_ways(variant, tiny_tokenizer, prompts)
        for i, (a, b) in enumerate(zip(fast, reference)):
            assert a.dtype == b.dtype and torch.equal(a, b), f"{family} {name}: step {i} differs"


def test_a_fused_copy_follows_weight_changes_like_a_plain_one(tiny_tokenizer):
    source = family_model("qwen2", len(tiny_tokenizer))  # biases on q/k/v: fused too
    plain, fused = InferenceCopy(source, torch.bfloat16), InferenceCopy(source, torch.bfloat16, fuse=True)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    for version in range(2):
        plain.refresh(source, version)
        fused.refresh(source, version)
        with torch.no_grad():
            assert torch.equal(fused.model(ids).logits, plain.model(ids).logits)
            source.model.layers[0].self_attn.k_proj.bias.add_(0.5)  # an optimizer step, say
            source.model.layers[1].mlp.up_proj.weight.mul_(3.0)


def test_models_the_step_cannot_reproduce_decode_through_their_forward(tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    model = build_tiny_model(len(tiny_tokenizer))
    assert decode_step_for(model)[0] is not None
    wrapped = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    step, why = decode_step_for(wrapped)
    assert step is None and "LoRA" in why
    eager = copy.deepcopy(model)
    eager.config._attn_implementation = "eager"
    step, why = decode_step_for(eager)
    assert step is None and "eager" in why


@pytest.mark.parametrize("inference_dtype", ["float32", "bf16"])
def test_generation_samples_the_same_tokens_with_the_step_and_without(inference_dtype, tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(lm_module, "packing_pays", lambda: True)
    prompts = [[{"role": "user", "content": f"Board {i}: {'x ' * i}what action do you take?"}] for i in range(5)]
    outputs, paths = {}, {}
    for fast in (False, True):
        config = ModelConfig(model="tiny", inference_dtype=inference_dtype, fast_decode=fast)
        lm = LanguageModel(build_tiny_model(len(tiny_tokenizer), seed=1, init_range=0.2), tiny_tokenizer, "tiny", config)
        greedy = lm.generate(prompts, SamplingConfig(temperature=0, max_new_tokens=12))
        streams = [torch.Generator().manual_seed(7 + i) for i in range(len(prompts))]
        sampled = lm.generate(prompts, SamplingConfig(temperature=1.0, top_p=0.9, top_k=20, max_new_tokens=12),
                              generator=streams)
        outputs[fast] = [g.token_ids for g in greedy + sampled]
        paths[fast] = lm.generator.decode_path
        assert ("decode steps skip" in lm.inference_precision.reason) == fast  # recorded with the run
    assert paths[True] == "decode_step" and paths[False].startswith("forward")
    assert outputs[True] == outputs[False]
    assert any(len(ids) > 1 for ids in outputs[True])  # it decoded past the first token
