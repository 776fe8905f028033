"""The performance work must not change what is computed: the bf16 sampling copy, the last-position
logits, rows that finish early, per-game experiences in one batch, the probe's shared forward."""

import pytest
import torch

from oel_engine.config import (
    ConsolidationConfig,
    GameConfig,
    ModelConfig,
    SamplingConfig,
)
from oel_engine.consolidation.trainer import Distiller
from oel_engine.errors import OelError
from oel_engine.evaluation.move_probe import MoveProbe
from oel_engine.model.generation import BatchGenerator, last_positions
from oel_engine.model.kv_cache import common_prefix_length
from oel_engine.model.lm import LanguageModel
from oel_engine.model.precision import choose_inference
from oel_engine.play.policies import ScriptedPolicy
from oel_engine.play.rollout import play_episodes
from tests.support import build_tiny_model, turn_prompts

LORA = ConsolidationConfig(steps=1, lora_rank=4, lora_alpha=8, target_modules=("q_proj", "v_proj", "up_proj"),
                           autocast="off", gradient_checkpointing="off")


def bf16_lm(tokenizer, setting="bf16"):
    model = build_tiny_model(len(tokenizer), seed=1, init_range=0.2)
    return LanguageModel(model, tokenizer, name="tiny", config=ModelConfig(model="tiny", inference_dtype=setting))


def last_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, logits_to_keep=1).logits[:, -1].float()


def test_the_bf16_copy_computes_what_the_lora_model_computes(tiny_tokenizer):
    lm = bf16_lm(tiny_tokenizer)
    ids = torch.tensor([lm.encode_chat([{"role": "user", "content": "Current Board: | P | H | G |"}])])
    assert lm.inference_model().dtype == torch.bfloat16 and next(lm.model.parameters()).dtype == torch.float32
    base = last_logits(lm.model, ids)
    distiller = Distiller(lm, LORA, seed=0)
    with torch.no_grad():  # a trained-looking adapter: B is zero at initialisation
        for name, p in distiller.peft.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    lm.weights_changed()
    student = last_logits(distiller.peft, ids)
    gap = (student - base).abs().max().item()
    tolerance = 0.05 * base.abs().max().item()
    assert gap > 4 * tolerance  # the adapter moves the logits far more than bf16 rounding does
    assert (last_logits(lm.inference_model(), ids) - student).abs().max().item() < tolerance
    with distiller.teacher():  # the adapter switched off: the copy follows
        assert (last_logits(lm.inference_model(), ids) - base).abs().max().item() < tolerance
    distiller.merge()
    assert (last_logits(lm.inference_model(), ids) - student).abs().max().item() < tolerance


def test_inference_precision_settings(tiny_tokenizer):
    lm = bf16_lm(tiny_tokenizer, "float32")
    assert lm.inference_model() is lm.model and lm.inference_precision.choice == "float32"
    with pytest.raises(OelError, match="unknown inference dtype"):
        choose_inference("fast", torch.device("cpu"), torch.float32)
    weights_in_bf16 = choose_inference("auto", torch.device("cpu"), torch.bfloat16)
    assert weights_in_bf16.choice == "bfloat16"  # nothing to copy: the loaded weights are used


def test_last_positions_give_the_same_logits_as_slicing(tiny_lm):
    ids = torch.tensor(turn_prompts(tiny_lm, [0, 1])[0])[None].repeat(2, 1)
    with torch.no_grad():
        sliced = tiny_lm.model(input_ids=ids, logits_to_keep=3).logits
        gathered = tiny_lm.model(input_ids=ids, logits_to_keep=last_positions(ids.shape[1], 3)).logits
    assert gathered.shape == sliced.shape == (2, 3, sliced.shape[-1])
    assert torch.allclose(gathered, sliced, atol=1e-5)
    assert last_positions(2, 3) == 3  # more than the length: the int (keeps all)


def test_rows_that_finish_early_do_not_move_the_others_random_streams(tiny_lm, tiny_tokenizer):
    prompts = turn_prompts(tiny_lm, [0, 1, 2, 3, 4], moves_played=1)
    # frequent tokens as end tokens, so rows finish at different steps
    probe = BatchGenerator(tiny_lm.model, tiny_tokenizer, [tiny_tokenizer.eos_token_id], 0)
    cfg = SamplingConfig(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=16)
    streams = lambda: [torch.Generator().manual_seed(100 + i) for i in range(len(prompts))]
    first = probe.generate(prompts, cfg, generator=streams())
    common = {t for g in first for t in g.token_ids[:3]}
    gen = BatchGenerator(tiny_lm.model, tiny_tokenizer, sorted(common)[:6], 0)
    together = gen.generate(prompts, cfg, generator=streams())
    alone = [gen.generate([p], cfg, generator=[s])[0] for p, s in zip(prompts, streams())]
    lengths = {len(g.token_ids) for g in together}
    assert len(lengths) > 1  # rows did finish at different steps
    assert [g.token_ids for g in together] == [g.token_ids for g in alone]


def test_games_in_one_batch_each_read_their_own_experience():
    seen = {}

    def answer(request):
        seen.setdefault(request.key[1], request.prompt[-1]["content"])
        return "[down]"

    play_episodes(GameConfig(), [0, 0, 1], ScriptedPolicy(answer), experiences=["LESSON-A", None, "LESSON-C"])
    assert "LESSON-A" in seen[0] and "Experience:" not in seen[1] and "LESSON-C" in seen[2]
    with pytest.raises(ValueError, match="one experience per game"):
        play_episodes(GameConfig(), [0, 1], ScriptedPolicy(answer), experiences=["x"])


def test_next_token_logits_equal_a_full_forward(tiny_lm):
    prompts = turn_prompts(tiny_lm, [0, 1, 2])
    got = tiny_lm.generator.next_token_logits(prompts)
    assert tiny_lm.generator.store.root is not None  # the shared preamble was computed once
    for row, prompt in zip(got, prompts):
        assert torch.allclose(row, last_logits(tiny_lm.model, torch.tensor([prompt]))[0], atol=1e-4)


def test_the_probe_reads_each_distinct_prompt_once(tiny_lm):
    from oel_engine.evaluation.move_probe import state_of
    from oel_engine.games import make_game

    states = []
    for seed in (0, 1):
        game = make_game(GameConfig())
        game.reset(seed)
        states.append(state_of(game))
    rows = []
    real = tiny_lm.generator.tree_log_probs
    tiny_lm.generator.tree_log_probs = lambda prompts, *a: rows.append(len(prompts)) or real(prompts, *a)
    probe = MoveProbe(tiny_lm, batch_size=8)
    out = probe.read([states[0].prompt, states[1].prompt, states[0].prompt])
    assert sum(rows) == 2 and len(out) == 3
    assert out[0].probs == out[2].probs and out[0].probs != out[1].probs


LESSONS = ["- EXPERIENCE ITEM: avoid holes, move toward the goal. " * 3, "Congratulations! You reached the goal! " * 3]


def lesson_prompts(lm, tokenizer, games: list[list[int]]) -> list[list[int]]:
    """Each game's prompt under each of the two lessons, lesson after lesson."""
    return [lm.encode_chat([{"role": "user", "content": f"Experience: {lesson}\\n{tokenizer.decode(g)}"}])
            for lesson in LESSONS for g in games]


def test_rows_sharing_an_experience_prefill_it_once_with_the_same_tokens(tiny_lm, tiny_tokenizer):
    prompts = lesson_prompts(tiny_lm, tiny_tokenizer, turn_prompts(tiny_lm, [0, 1, 2]))
    together = tiny_lm.generator.generate(prompts, GREEDY_12)
    assert len(tiny_lm.generator.store.groups) == 2  # one shared prefill per lesson
    fresh = BatchGenerator(tiny_lm.model, tiny_tokenizer, tiny_lm.eos_token_ids(), 0)  # no reuse at all
    assert [g.token_ids for g in together] == [fresh.generate([p], GREEDY_12)[0].token_ids for p in prompts]


GREEDY_12 = SamplingConfig(temperature=0.0, max_new_tokens=12)


def test_a_longer_root_kept_from_an_earlier_call_does_not_stop_rows_sharing_an_experience(tiny_lm, tiny_tokenizer):
    prompts = lesson_prompts(tiny_lm, tiny_tokenizer, turn_prompts(tiny_lm, [0, 1, 2]))
    earlier = [prompts[0], prompts[0][:-1]]  # an earlier call whose rows share far more: a long root
    tiny_lm.generator.generate(earlier, GREEDY_12)
    root = tiny_lm.generator.store.root
    common = common_prefix_length(prompts[0], prompts[3])  # what the two lessons' rows share
    assert len(root.tokens) > common + 16
    out = tiny_lm.generator.generate(prompts, GREEDY_12)
    assert tiny_lm.generator.store.root is root  # kept: it covers this batch's common prefix
    # the first lesson's rows reuse the root, the second's a prefill of that lesson shared by its rows
    assert len(tiny_lm.generator.store.groups) == 1
    assert all(g.reused_tokens > common + 16 for g in out)


def test_prefixes_that_share_an_experience_are_prefilled_from_one_prefill_of_it(tiny_lm, tiny_tokenizer):
    games = turn_prompts(tiny_lm, [0, 1])
    prompts = lesson_prompts(tiny_lm, tiny_tokenizer, [games[0], games[0], games[1], games[1]])  # two samples of two maps
    together = tiny_lm.generator.generate(prompts, GREEDY_12)
    groups = sorted(tiny_lm.generator.store.groups, key=lambda entry: len(entry.tokens))
    inner, outer = groups[:2], groups[2:]
    assert len(outer) == 4  # each map's whole prompt under each lesson, for its two samples
    # each lesson's part prefilled once, under both of its maps' prompts
    assert sorted(next(i for i, p in enumerate(prompts[::4]) if p[: len(e.tokens)] == list(e.tokens)) for e in inner) == [0, 1]
    for lesson in inner:
        assert sum(entry.tokens[: len(lesson.tokens)] == lesson.tokens for entry in outer) == 2
    fresh = BatchGenerator(tiny_lm.model, tiny_tokenizer, tiny_lm.eos_token_ids(), 0)
    assert [g.token_ids for g in together] == [fresh.generate([p], GREEDY_12)[0].token_ids for p in prompts]
