import pytest
import torch

from oel_engine.config import SamplingConfig
from oel_engine.model.generation import sample_next
from oel_engine.model.kv_cache import PrefixEntry, PrefixStore, common_prefix_length
from oel_engine.play.prompts import turn_messages
from tests.support import turn_prompts

GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=12)


def test_batched_greedy_equals_one_at_a_time(tiny_lm):
    prompts = turn_prompts(tiny_lm, [0, 1, 2]) + turn_prompts(tiny_lm, [3, 4], moves_played=2)
    assert len({len(p) for p in prompts}) > 1  # really different lengths: padding is exercised
    one_by_one = []
    for p in prompts:
        tiny_lm.generator.reset_cache()
        one_by_one.append(tiny_lm.generator.generate([p], GREEDY)[0].token_ids)
    tiny_lm.generator.reset_cache()
    batched = [g.token_ids for g in tiny_lm.generator.generate(prompts, GREEDY, keys=range(len(prompts)))]
    assert batched == one_by_one
    assert all(len(ids) > 0 for ids in batched)


def test_prefix_reuse_gives_the_same_tokens_as_a_fresh_prefill(tiny_lm):
    turn0 = turn_prompts(tiny_lm, [0, 1, 2])
    turn2 = turn_prompts(tiny_lm, [0, 1, 2], moves_played=2)
    gen = tiny_lm.generator
    gen.generate(turn0, GREEDY, keys=[0, 1, 2])  # fills the per-game store
    with_reuse = gen.generate(turn2, GREEDY, keys=[0, 1, 2])
    # each game reuses exactly the part its new prompt shares with its previous one
    assert [g.reused_tokens for g in with_reuse] == [common_prefix_length(a, b) for a, b in zip(turn0, turn2)]
    assert all(g.reused_tokens > 50 for g in with_reuse)
    gen.reset_cache()
    gen.store.budget_bytes, saved = 0, gen.store.budget_bytes
    fresh = gen.generate(turn2, GREEDY)
    gen.store.budget_bytes = saved
    assert all(g.reused_tokens == 0 for g in fresh)
    assert [g.token_ids for g in with_reuse] == [g.token_ids for g in fresh]


def test_sampling_is_reproducible_per_seed(tiny_lm):
    prompts = turn_prompts(tiny_lm, [0, 1])
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=10)
    runs = []
    for seed in (5, 5, 6):
        tiny_lm.generator.reset_cache()
        g = torch.Generator().manual_seed(seed)
        runs.append([x.token_ids for x in tiny_lm.generator.generate(prompts, cfg, generator=g)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_generation_stops_at_end_token_and_at_the_limit(tiny_lm):
    eos = tiny_lm.eos_token_ids()[0]
    with torch.no_grad():  # make the end token overwhelmingly likely
        tiny_lm.model.lm_head.weight[eos] += 50.0
    tiny_lm.model.config.tie_word_embeddings = False
    out = tiny_lm.generator.generate(turn_prompts(tiny_lm, [0]), SamplingConfig(temperature=0.0, max_new_tokens=20))[0]
    assert out.token_ids == [eos] and out.finished and out.text == ""


def test_max_new_tokens_cap(tiny_lm):
    eos = set(tiny_lm.eos_token_ids())
    out = tiny_lm.generator.generate(turn_prompts(tiny_lm, [0]), SamplingConfig(temperature=0.0, max_new_tokens=3))[0]
    assert len(out.token_ids) <= 3
    assert out.finished == (out.token_ids[-1] in eos)


@pytest.mark.parametrize("logits, top2, top_k_for_top_p, best", [
    ([5.0, 4.0, 1.0, 0.0, -1.0], {0, 1}, 0, 0),
    # unsorted: top-k runs first, so its columns must map back to vocabulary ids
    ([1.0, 5.0, 0.0, 4.0, -1.0], {1, 3}, 3, 1),
])
def test_top_k_and_top_p_restrict_the_choice(logits, top2, top_k_for_top_p, best):
    logits = torch.tensor([logits])
    g = torch.Generator().manual_seed(0)
    picks = {int(sample_next(logits, SamplingConfig(temperature=1.0, top_k=2, top_p=1.0), g)) for _ in range(200)}
    assert picks == top2
    top_p = SamplingConfig(temperature=1.0, top_k=top_k_for_top_p, top_p=0.5)
    picks = {int(sample_next(logits, top_p, g)) for _ in range(200)}
    assert picks == {best}  # the top token alone holds more than half the mass
    assert int(sample_next(logits, SamplingConfig(temperature=0.0), g)) == best


def test_prefix_store_prefers_longest_match_and_respects_budget():
    def entry(tokens):
        t = torch.zeros(1, 1, len(tokens), 4)
        return PrefixEntry(tuple(tokens), [t], [t.clone()])

    store = PrefixStore(budget_bytes=10**9)
    store.set_root(entry([1, 2, 3]))
    store.put("a", entry([1, 2, 3, 4, 5]))
    best, n = store.best_match("a", [1, 2, 3, 4, 5, 6])
    assert n == 5 and best.tokens[-1] == 5
    best, n = store.best_match("b", [1, 2, 9])
    assert n == 2 and best is store.root
    _, n = store.best_match("a", [1, 2, 3, 4, 5])  # at least one token must stay to compute logits
    assert n == 4
    small = PrefixStore(budget_bytes=entry([1] * 10).nbytes * 2)
    for key in "abc":
        small.put(key, entry([1] * 10))
    assert small.best_match("a", [1] * 11)[1] == 0  # oldest evicted
    assert small.best_match("c", [1] * 11)[1] == 10


def test_generation_and_scoring_pass_the_cache_as_the_installed_transformers_asks(tiny_lm):
    """No deprecated `past_key_values` argument (transformers 5.40 removes it): generation with
    prefix reuse and a scoring pass with a shared prefix raise no deprecation warning."""
    import warnings

    from oel_engine.consolidation.scoring import SharedPrefix, response_logits

    messages = turn_messages("You are an agent.", [], None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):  # the second call reuses the stored prefix
            tiny_lm.generate([messages, messages], SamplingConfig(temperature=0.0, max_new_tokens=3), keys=["a", "b"])
        ids = tiny_lm.encode_chat(messages)
        prefix = SharedPrefix.run(tiny_lm.model, ids[:8], tiny_lm.device)
        response_logits(tiny_lm.model, [ids + [5, 6]], [2], tiny_lm.generator.pad_id, tiny_lm.device, prefix)
    deprecated = [str(w.message) for w in caught if "past_key_values" in str(w.message)]
    assert not deprecated, deprecated


def test_draws_follow_the_probabilities_per_row_and_never_pick_a_filtered_token(monkeypatch):
    from oel_engine.model.generation import draw

    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4, 0.0]])
    counts = torch.zeros_like(probs)
    g = torch.Generator().manual_seed(3)
    for _ in range(4000):
        counts[torch.arange(3), draw(probs, g).squeeze(-1)] += 1
    assert torch.all(counts[probs == 0] == 0)
    assert torch.allclose(counts / 4000, probs, atol=0.03)
    # one stream per row: a row draws the same whatever rows come with it
    batch_streams = [torch.Generator().manual_seed(10 + i) for i in range(3)]
    row_streams = [torch.Generator().manual_seed(10 + i) for i in range(3)]
    together = [draw(probs, batch_streams).squeeze(-1).tolist() for _ in range(20)]
    alone = [[int(draw(probs[i : i + 1], [row_streams[i]])) for i in range(3)] for _ in range(20)]
    assert together == alone
    # a draw whose product with the total rounds up to the total still lands on a column with
    # probability (not past the end, not on the filtered-out tail)
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([1.0]))
    assert int(draw(torch.tensor([[0.25, 0.75, 0.0, 0.0]]))) == 1
