import copy
import itertools
import random

import torch

from oel_engine.config import SamplingConfig
from oel_engine.model import prefill
from oel_engine.model.prefill import chunked_prefill, chunks
from tests.support import turn_prompts

GREEDY = SamplingConfig(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=12)


def cost(fresh, parts, call_tokens):
    return sum(call_tokens + (b - a) * max(fresh[a:b]) for a, b in parts)


def test_chunks_cover_the_rows_at_the_least_cost():
    rng = random.Random(0)
    for _ in range(40):
        fresh = [rng.choice([1, 2, 40, 90, 186]) for _ in range(rng.randint(1, 7))]
        call = rng.choice([0, 10, 96, 1000])
        parts = chunks(fresh, call)
        assert [a for a, _ in parts] == [0] + [b for _, b in parts[:-1]] and parts[-1][1] == len(fresh)
        best = min(cost(fresh, list(zip((0, *cuts), (*cuts, len(fresh)))), call)
                   for k in range(len(fresh)) for cuts in itertools.combinations(range(1, len(fresh)), k))
        assert cost(fresh, parts, call) == best


def test_a_demo_turn_splits_where_the_padding_outweighs_a_call():
    assert chunks([1] * 60 + [186] * 2) == [(0, 60), (60, 62)]  # 11,532 tokens computed as 60 + 372
    assert chunks([40, 41, 45, 50]) == [(0, 4)]  # like rows: one call


def mixed_batch(lm):
    """Turn prompts whose rows bring very different new parts: two games continue from their
    cached first turn (a few new tokens), one starts fresh (its whole prompt past the root)."""
    gen = lm.generator
    gen.reset_cache()
    gen.generate(turn_prompts(lm, [0, 1]), GREEDY, keys=[0, 1])
    later = turn_prompts(lm, [0, 1], moves_played=2)
    return [turn_prompts(lm, [5], moves_played=3)[0], later[0], later[1]], [5, 0, 1]


def test_a_chunked_prefill_computes_what_one_forward_does(tiny_lm, monkeypatch):
    gen = tiny_lm.generator
    prompts, keys = mixed_batch(tiny_lm)
    _, _, _, cache, mask, pos, input_ids = gen._prepare(prompts, keys, 4)
    fresh = mask[:, -input_ids.shape[1]:].sum(1).tolist()
    monkeypatch.setattr(prefill, "CALL_TOKENS", 1)
    assert len(chunks(fresh, 1)) > 1 and len(set(fresh)) > 1
    whole_cache = copy.deepcopy(cache)
    with torch.no_grad():
        whole = gen._forward(input_ids, mask, pos, whole_cache)
        chunked = chunked_prefill(gen._forward, input_ids, mask, pos, cache)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    assert cache.get_seq_length() == whole_cache.get_seq_length() == mask.shape[1]
    valid = mask.bool()
    for ours, theirs in zip(cache.layers, whole_cache.layers):
        for row in range(mask.shape[0]):
            torch.testing.assert_close(ours.keys[row][:, valid[row]], theirs.keys[row][:, valid[row]], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(ours.values[row][:, valid[row]], theirs.values[row][:, valid[row]], rtol=1e-5, atol=1e-5)


def test_rows_reordered_for_the_prefill_come_back_in_the_callers_order(tiny_lm, monkeypatch):
    monkeypatch.setattr(prefill, "CALL_TOKENS", 1)
    gen = tiny_lm.generator
    prompts, keys = mixed_batch(tiny_lm)
    order = gen._prepare(prompts, keys, 4)[0]
    assert order != sorted(order)  # the batch really was reordered
    assert [order[i] for i in order] != sorted(order)  # and not by a swap: its inverse is another order
    prompts, keys = mixed_batch(tiny_lm)
    together = gen.generate(prompts, GREEDY, keys=keys)
    logits = gen.next_token_logits(prompts)
    for i, prompt in enumerate(prompts):
        gen.reset_cache()
        alone = gen.generate([prompt], GREEDY)[0]
        assert together[i].token_ids == alone.token_ids and together[i].prompt_tokens == len(prompt)
        torch.testing.assert_close(logits[i], gen.next_token_logits([prompt])[0], rtol=1e-4, atol=1e-4)
