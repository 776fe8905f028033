"""The decode step computes exactly what the model's forward computes on the same cache, for
plain and fused/packed copies and the families it accepts, and refuses what it cannot reproduce."""

from __future__ import annotations

import copy

import pytest
import torch

from oel_engine.config import ModelConfig, SamplingConfig
from oel_engine.model import generation
from oel_engine.model import lm as lm_module
from oel_engine.model.decode_step import decode_step_for
from oel_engine.model.fused_projections import FusedProjection
from oel_engine.model.generation import BatchGenerator
from oel_engine.model.inference import InferenceCopy
from oel_engine.model.kv_cache import SharedLayout
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
    _, _, _, cache, mask, pos, input_ids = gen._prepare(prompts, [None] * len(prompts), steps)
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


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_attention_read_once_where_rows_hold_the_same_positions_is_attention_over_the_whole_cache(dtype, tolerance):
    from oel_engine.model.decode_step import additive_mask, shared_prefix_attention
    from oel_engine.model.kv_cache import SharedLayout

    torch.manual_seed(0)
    batch, kv_heads, group, dim, length = 6, 2, 3, 16, 90
    keys, values = torch.randn(batch, kv_heads, length, dim), torch.randn(batch, kv_heads, length, dim)
    q = torch.randn(batch, kv_heads, group, dim) * 2  # peaked enough that any part can dominate
    # rows 0-2 hold [20, 50) alike, rows 4-5 [20, 35) (padding after); row 3 holds nothing more
    layouts = {"all rows": SharedLayout(shared=20, own_start=20),
               "groups": SharedLayout(20, [0, 0, 0, -1, 1, 1], [50, 35], 50),
               "groups, none shared by all": SharedLayout(0, [1, 1, -1, 0, 0, 0], [30, 40], 40)}
    for name, layout in layouts.items():
        k, v = keys.clone(), values.clone()
        mask = torch.ones(batch, length, dtype=torch.long)
        k[:, :, : layout.shared], v[:, :, : layout.shared] = k[:1, :, : layout.shared], v[:1, :, : layout.shared]
        for rows, row, end in layout.groups():
            k[rows, :, layout.shared : end], v[rows, :, layout.shared : end] = k[row, :, layout.shared : end], v[row, :, layout.shared : end]
        for r, g in enumerate(layout.group_of_row or [-1] * batch):
            end = layout.group_ends[g] if g >= 0 else layout.shared
            mask[r, end : layout.own_start] = 0  # the span's padding
            mask[r, layout.own_start : layout.own_start + 2 * r] = 0  # each row's own past left-padded differently
        q_, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        whole = torch.nn.functional.scaled_dot_product_attention(q_, k, v, attn_mask=additive_mask(mask, dtype))
        split = shared_prefix_attention(q_, k, v, layout, layout.groups(), additive_mask(mask[:, layout.own_start :], dtype),
                                        dim**-0.5)
        assert split.dtype == dtype and split.shape == whole.shape
        assert (split.float() - whole.float()).abs().max() <= tolerance * whole.float().abs().max(), name
        if not layout.group_of_row:  # and with nothing hidden among the rows' own positions
            whole = torch.nn.functional.scaled_dot_product_attention(q_, k, v)
            split = shared_prefix_attention(q_, k, v, layout, layout.groups(), None, dim**-0.5)
            assert (split.float() - whole.float()).abs().max() <= tolerance * whole.float().abs().max(), name


def decode_fixed_tokens(model, tokenizer, prompts, steps, split: bool, monkeypatch):
    """Per-step logits (float32) of decode steps fed the same tokens whatever the model samples,
    with attention split at the rows' shared prefix or not; and the cache's shared length."""
    monkeypatch.setattr(generation, "MIN_SHARED_TOKENS", 32 if split else 10**9)
    monkeypatch.setattr(generation, "MIN_GROUP_SAVING", 1)  # tiny batches: worth splitting here, to test it
    monkeypatch.setattr(generation, "MIN_SPLIT_SAVING", 1)
    gen = BatchGenerator(model, tokenizer, [tokenizer.eos_token_id])
    step, _ = decode_step_for(model)
    seen = []
    with torch.no_grad():
        _, _, _, cache, mask, pos, input_ids = gen._prepare(prompts, [None] * len(prompts), steps)
        gen._forward(input_ids, mask, pos, cache)
        next_pos = pos[:, -1:] + 1
        for i in range(steps):
            tokens = torch.arange(len(prompts)) * 7 + 3 * i + 5
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            reference = gen._forward(tokens[:, None], mask, next_pos, copy.deepcopy(cache)).float()
            seen.append((step(tokens, next_pos, mask, cache).float(), reference))
            next_pos = next_pos + 1
    return seen, cache.layout


PREAMBLE = [5 + (i % 40) for i in range(45)]
LESSONS = [[60 + (i % 7) for i in range(40)], [70 + (i % 5) for i in range(50)]]


@pytest.mark.parametrize("rows", ["one preamble", "two lessons after it"])
def test_rows_with_a_cached_prefix_in_common_decode_it_once_within_rounding(rows, tiny_tokenizer, monkeypatch):
    model = family_model("llama", len(tiny_tokenizer))
    if rows == "one preamble":
        prompts = [PREAMBLE + [50 + i] * (2 + 3 * i) for i in range(4)]  # rows of different lengths
    else:  # rows 0, 2, 4 read the first lesson, 1 and 3 the second, 5 none
        prompts = [PREAMBLE + LESSONS[i % 2] + [50 + i] * (2 + i) for i in range(5)] + [PREAMBLE + [9] * 30]
    exact, layout = decode_fixed_tokens(model, tiny_tokenizer, prompts, 6, True, monkeypatch)
    assert layout.shared == len(PREAMBLE)  # the root: the preamble
    if rows == "one preamble":
        assert layout.group_of_row is None
    else:  # each lesson prefilled once for its rows and read once per step
        assert layout.group_of_row == [0, 1, 0, 1, 0, -1]
        assert [end - layout.shared for end in layout.group_ends] == [len(LESSONS[0]), len(LESSONS[1])]
    for split, forward in exact:  # float32: the forward's logits to float32 rounding
        assert (split - forward).abs().max() <= 1e-5 * forward.abs().max()
    error = lambda run: torch.stack([(got - want).pow(2).mean() for (got, _), (want, _) in zip(run, exact)]).sqrt()
    for name, variant in list(variants(model))[1:]:
        split, shared = decode_fixed_tokens(variant, tiny_tokenizer, prompts, 6, True, monkeypatch)
        whole, unshared = decode_fixed_tokens(variant, tiny_tokenizer, prompts, 6, False, monkeypatch)
        assert (shared, unshared) == (layout, SharedLayout())
        # bf16: one more rounding of each part's output; as far from float32 as bf16 is anyway
        assert (error(split) <= 1.5 * error(whole)).all(), name
        assert max((a - b).abs().max() for (a, b) in split) > 0  # the split did run: not the forward's bits


def test_rows_read_once_the_cached_positions_their_prompts_share(tiny_tokenizer, monkeypatch):
    from oel_engine.model.kv_cache import PrefixEntry

    gen = BatchGenerator(family_model("llama", len(tiny_tokenizer)), tiny_tokenizer, [tiny_tokenizer.eos_token_id])
    tokens = list(range(5, 125))
    entry = PrefixEntry(tuple(tokens), [torch.zeros(1, 2, 120, 16)] * 2, [torch.zeros(1, 2, 120, 16)] * 2)
    layout = lambda prompts, reuse: gen._shared_layout(prompts, [(entry, n) for n in reuse])
    two = [tokens[:60] + [70], tokens[:60] + [71]]
    monkeypatch.setattr(generation, "MIN_SPLIT_SAVING", 60)  # the second row's 60 positions
    assert layout(two, [60, 60]).shared == 60
    monkeypatch.setattr(generation, "MIN_SPLIT_SAVING", 61)  # two rows sparing less: no split at all
    assert layout(two, [60, 60]) == SharedLayout()
    monkeypatch.setattr(generation, "MIN_SPLIT_SAVING", 1)
    assert layout(two, [60, 50]).shared == 50  # one row has less cached
    assert layout(two, [60, 20]).shared == 0  # too few to read apart
    assert layout([tokens[:40] + [9] * 21, two[1]], [60, 60]).shared == 40  # the prompts part at 40

    # beyond what all rows hold: rows 0, 2 and 3 share 100 tokens, the others only 40 with them
    prompts = [tokens[:100] + [1], tokens[:40] + [7] * 61, tokens[:100] + [2], tokens[:100] + [3], tokens[:40] + [8] * 61]
    monkeypatch.setattr(generation, "MIN_GROUP_SAVING", 100)  # (3 - 1) rows x 50 positions
    got = layout(prompts, [100, 40, 100, 100, 40])
    assert (got.shared, got.group_of_row, got.group_ends, got.own_start) == (40, [0, -1, 0, 0, -1], [100], 100)
    got = layout(prompts, [100, 40, 100, 90, 40])  # one member has less cached
    assert (got.group_of_row, got.group_ends) == ([0, -1, 0, 0, -1], [90])
    monkeypatch.setattr(generation, "MIN_GROUP_SAVING", 121)  # not worth a call of its own
    got = layout(prompts, [100, 40, 100, 100, 40])
    assert got.group_of_row is None and got.own_start == 40


def test_the_layout_follows_the_rows_a_compacted_batch_keeps():
    layout = SharedLayout(20, [0, 1, 0, -1, 1], [50, 35], 50)
    assert layout.groups() == [([0, 2], 0, 50), ([1, 4], 1, 35)]
    layout.select([1, 2, 3, 4])  # row 0 finished
    assert layout.groups() == [([0, 3], 0, 35), (slice(1, 2), 1, 50)]
    layout.select([1, 2])
    assert layout.groups() == [(slice(0, 1), 0, 50)] and layout.own_start == 50


def test_groups_that_would_pad_every_rows_cache_out_are_not_formed(tiny_tokenizer, monkeypatch):
    from oel_engine.model.kv_cache import PrefixEntry

    gen = BatchGenerator(family_model("llama", len(tiny_tokenizer)), tiny_tokenizer, [tiny_tokenizer.eos_token_id])
    tokens = list(range(5, 205))
    entry = PrefixEntry(tuple(tokens), [torch.zeros(1, 2, 200, 16)] * 2, [torch.zeros(1, 2, 200, 16)] * 2)
    monkeypatch.setattr(generation, "MIN_GROUP_SAVING", 1)
    monkeypatch.setattr(generation, "MIN_SPLIT_SAVING", 1)
    grouped = [tokens[:100] + [1], tokens[:100] + [2]]
    # a third row with a long past of its own: its own positions would start after the group's span
    alone = tokens[:40] + [9] * 160
    layout = gen._shared_layout(grouped + [alone[:61]], [(entry, n) for n in (100, 100, 40)])
    assert layout.group_ends == [100]  # short: the cache grows by nothing
    layout = gen._shared_layout(grouped + [alone], [(entry, 100), (entry, 100), (PrefixEntry(tuple(alone), entry.keys, entry.values), 199)])
    assert (layout.shared, layout.group_of_row, layout.own_start) == (40, None, 40)
