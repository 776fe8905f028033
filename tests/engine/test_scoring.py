"""Scoring passes: right-padded rows and a prefix shared by all rows give each row's own logits,
and the step's loss and gradients are those of the plain passes."""

import pytest
import torch

from oel_engine.consolidation import scoring
from oel_engine.consolidation.trainer import Distiller, Scored
from tests.support import distill_config as config
from tests.support import prefixes

OTHER = "- EXPERIENCE ITEM: Count the rows before you move."


def scored_with_varied_lengths(d: Distiller) -> list[Scored]:
    """Rows of two teacher contexts (as a round with K=2 experiences), responses cut to varied lengths."""
    batch = prefixes([0, 1]) + prefixes([2], experience=OTHER)
    responses = [r[: 2 + i % 5] or [5] for i, r in enumerate(d.sample(batch))]
    return d.build(batch, responses)


def row_alone(model, seq: list[int], response_len: int) -> torch.Tensor:
    """The reference: one unpadded row through the model's own forward."""
    logits = model(input_ids=torch.tensor([seq])).logits[0]
    return logits[len(seq) - response_len - 1: len(seq) - 1]


@pytest.mark.parametrize("side", ["teacher_ids", "student_ids"])
def test_each_row_scores_as_it_would_alone_with_and_without_a_shared_prefix(tiny_lm, side):
    d = Distiller(tiny_lm, config())
    d.step(prefixes([3]))  # a non-zero adapter, so the student differs from the teacher
    scored = scored_with_varied_lengths(d)
    seqs, lens = [getattr(s, side) for s in scored], [s.response_len for s in scored]
    assert len(set(lens)) > 1 and len({len(s) for s in seqs}) > 1
    d.peft.eval()
    with torch.no_grad():
        prefix = d.shared_prefix(seqs, lens)
        assert prefix is not None and prefix.length >= scoring.MIN_SHARED_TOKENS
        for shared in (None, prefix):
            logits, mask = d.response_logits(seqs, lens, shared)
            assert mask.sum(-1).tolist() == lens
            for i, (seq, n) in enumerate(zip(seqs, lens)):
                torch.testing.assert_close(logits[i, logits.shape[1] - n:], row_alone(d.peft, seq, n),
                                           rtol=1e-5, atol=1e-5)


def gradients_and_stats(d: Distiller, scored: list[Scored]):
    d.peft.train()
    d.optimizer.zero_grad(set_to_none=True)
    stats = d.accumulate_gradients(scored)
    grads = {n: p.grad.clone() for n, p in d.peft.named_parameters() if p.requires_grad and p.grad is not None}
    d.optimizer.zero_grad(set_to_none=True)
    return stats, grads


@pytest.mark.parametrize("checkpointing", ["off", "on"])
def test_a_shared_prefix_leaves_the_loss_and_the_gradients_unchanged(tiny_lm, monkeypatch, checkpointing):
    # no dropout: both runs must see the same function
    d = Distiller(tiny_lm, config(micro_batch=2, gradient_checkpointing=checkpointing, lora_dropout=0.0,
                                  autocast="off"))
    d.step(prefixes([3]))  # lora_B moves off zero, so every adapter matrix gets a gradient
    scored = scored_with_varied_lengths(d)
    d.peft.double()  # float64: what is left of a difference is the method's, not float32 rounding
    runs = []
    real_run = scoring.SharedPrefix.run
    monkeypatch.setattr(scoring.SharedPrefix, "run", classmethod(
        lambda cls, *a: runs.append(a[1]) or real_run.__func__(cls, *a)))
    shared_stats, shared_grads = gradients_and_stats(d, scored)
    # the teacher's prefix ran once per context, the student's once (not under checkpointing)
    assert len({s.context for s in scored}) == 2
    assert len(runs) == (2 if checkpointing == "on" else 3)
    monkeypatch.setattr(scoring, "MIN_SHARED_TOKENS", 10**9)
    plain_stats, plain_grads = gradients_and_stats(d, scored)
    assert len(runs) == (2 if checkpointing == "on" else 3)
    assert shared_stats == pytest.approx(plain_stats, rel=1e-9)
    assert shared_grads.keys() == plain_grads.keys() and len(plain_grads) > 0
    for name, g in plain_grads.items():
        # the rotary embedding stays float32 inside a float64 model: differences of ~1e-8 remain
        torch.testing.assert_close(shared_grads[name], g, rtol=1e-6, atol=1e-6 * float(g.abs().max()), msg=name)


def test_the_frozen_weights_bf16_copy_changes_no_number_under_autocast(tiny_lm):
    d = Distiller(tiny_lm, config(micro_batch=2, autocast="bf16", lora_dropout=0.0))
    assert d.frozen is not None and len(d.frozen) > 0
    masters = {name: p for name, p in d.peft.named_parameters()}
    d.step(prefixes([3]))
    scored = scored_with_varied_lengths(d)
    with_copy = gradients_and_stats(d, scored)
    # the masters are back in place after the passes, float32 and the same objects
    assert {name: p for name, p in d.peft.named_parameters()} == masters
    assert all(p.dtype == torch.float32 for p in masters.values())
    d.frozen = None  # autocast casts every frozen weight itself, call by call
    without = gradients_and_stats(d, scored)
    assert with_copy[0] == without[0]
    for name, g in without[1].items():
        assert torch.equal(with_copy[1][name], g), name


def test_sliding_window_models_are_scored_without_a_shared_prefix():
    from transformers import LlamaConfig, MistralConfig, Qwen3Config

    assert scoring.full_attention_only(LlamaConfig())
    assert scoring.full_attention_only(Qwen3Config())  # its window is off by default
    assert not scoring.full_attention_only(MistralConfig(sliding_window=64))
    assert not scoring.full_attention_only(Qwen3Config(use_sliding_window=True, sliding_window=64, max_window_layers=0))


@pytest.mark.parametrize("family", ["qwen3", "gemma2"])
def test_other_model_families_score_each_row_as_alone_and_train_the_same(tiny_tokenizer, family, monkeypatch):
    """Qwen3 (q/k norms: what a GPU user runs) and Gemma2 (final logit softcapping: scored
    through its own forward) give the same logits with a shared prefix, and the same gradients."""
    from transformers import (
        Gemma2Config,
        Gemma2ForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    from oel_engine.config import ModelConfig
    from oel_engine.model.lm import LanguageModel

    torch.manual_seed(0)
    shape = dict(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096)
    if family == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**shape))
    else:  # no sliding-window layers, so the shared prefix applies; softcapping stays on
        model = Gemma2ForCausalLM(Gemma2Config(**shape, layer_types=["full_attention"] * 2,
                                               final_logit_softcapping=30.0))
    model.eval()
    lm = LanguageModel(model, tiny_tokenizer, name=family, config=ModelConfig(model=family, inference_dtype="float32"))
    d = Distiller(lm, config(micro_batch=2, lora_dropout=0.0, autocast="off",
                             target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")))
    d.step(prefixes([3]))
    scored = scored_with_varied_lengths(d)
    seqs, lens = [s.teacher_ids for s in scored], [s.response_len for s in scored]
    d.peft.eval()
    with torch.no_grad():
        prefix = d.shared_prefix(seqs, lens)
        assert prefix is not None
        logits, _ = d.response_logits(seqs, lens, prefix)
        for i, (seq, n) in enumerate(zip(seqs, lens)):
            torch.testing.assert_close(logits[i, logits.shape[1] - n:], row_alone(d.peft, seq, n), rtol=1e-5, atol=1e-5)
    d.peft.double()
    shared = gradients_and_stats(d, scored)
    monkeypatch.setattr(scoring, "MIN_SHARED_TOKENS", 10**9)
    plain = gradients_and_stats(d, scored)
    assert shared[0] == pytest.approx(plain[0], rel=1e-9)
    for name, g in plain[1].items():
        torch.testing.assert_close(shared[1][name], g, rtol=1e-6, atol=1e-6 * float(g.abs().max()), msg=name)


def test_a_row_that_does_not_start_with_the_prefix_is_refused(tiny_lm):
    d = Distiller(tiny_lm, config())
    scored = scored_with_varied_lengths(d)
    seqs, lens = [s.teacher_ids for s in scored], [s.response_len for s in scored]
    with torch.no_grad():
        prefix = d.shared_prefix(seqs[:2], lens[:2])  # the first context's longer prefix
        with pytest.raises(ValueError, match="shared prefix"):
            d.response_logits(seqs, lens, prefix)
