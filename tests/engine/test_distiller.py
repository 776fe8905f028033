"""Consolidation on a tiny random model: alignment, frozen teacher, LoRA-only gradients, learning."""

from dataclasses import replace

import pytest
import torch

from oel_engine.consolidation.trainer import Distiller
from oel_engine.play.prompts import EXPERIENCE_HEADER, insert_experience
from tests.support import distill_config as config
from tests.support import new_lm, prefixes


def test_student_and_teacher_differ_only_by_the_experience_block(tiny_lm):
    d = Distiller(tiny_lm, config())
    p = prefixes([3])[1]
    response = [7, 8, 9, tiny_lm.eos_token_ids()[0]]
    scored = d.build([p], [response])[0]
    s, t = scored.student_ids, scored.teacher_ids
    assert s[-4:] == t[-4:] == response  # the exact response tokens, never re-tokenised
    head = 0
    while s[head] == t[head]:
        head += 1
    tail = 0
    while tail < len(s) - head and s[-1 - tail] == t[-1 - tail]:
        tail += 1
    assert head + tail == len(s)  # the student is the teacher minus one contiguous span
    inserted = tiny_lm.tokenizer.decode(t[head:len(t) - tail])
    assert EXPERIENCE_HEADER.strip().split("\n")[0][:30] in inserted and "walk around them" in inserted
    assert insert_experience(p.prompt, "") == p.prompt


def test_gradients_reach_only_lora_and_teacher_stays_frozen(tiny_lm):
    d = Distiller(tiny_lm, config())
    batch = prefixes([0, 1])
    responses = d.sample(batch)
    scored = d.build(batch, responses)
    with torch.no_grad(), d.teacher():
        before, _ = d.response_logits([s.teacher_ids for s in scored], [s.response_len for s in scored])
    base_before = {n: p.detach().clone() for n, p in d.peft.named_parameters() if "lora_" not in n}
    for _ in range(2):
        d.step(batch)
    trainable = [n for n, p in d.peft.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    d.optimizer.zero_grad(set_to_none=False)
    loss, _ = d.loss_on(scored)
    loss.backward()
    for n, p in d.peft.named_parameters():
        if "lora_" in n:
            continue
        assert p.grad is None or p.grad.abs().sum() == 0, n
    assert all(torch.equal(base_before[n], p) for n, p in d.peft.named_parameters() if n in base_before)
    with torch.no_grad(), d.teacher():
        after, _ = d.response_logits([s.teacher_ids for s in scored], [s.response_len for s in scored])
    assert torch.allclose(before, after)
    with torch.no_grad():
        student, _ = d.response_logits([s.teacher_ids for s in scored], [s.response_len for s in scored])
    assert not torch.allclose(student, after)  # while the student did move


def test_zero_loss_when_the_teacher_sees_the_students_prompt(tiny_lm):
    d = Distiller(tiny_lm, config())
    batch = prefixes([0, 1], experience="")
    scored = d.build(batch, d.sample(batch))
    loss, stats = d.loss_on(scored)
    assert abs(loss.item()) < 1e-6 and abs(stats["reverse_kl"]) < 1e-6


@pytest.mark.parametrize("loss", ["topk", "full", "offpolicy"])
def test_consolidation_lowers_reverse_kl_on_held_out_prefixes(sharp_lm, loss):
    d = Distiller(sharp_lm, config(loss=loss))
    train = prefixes([0, 1, 2, 3])
    held_out = prefixes([10, 11, 12])
    fixed = d.sample(held_out)  # a fixed set of responses to measure on
    start = d.evaluate_kl(held_out, fixed)
    assert start > 0.01  # the experience changes the teacher's distribution
    metrics = [d.step(train) for _ in range(8)]
    end = d.evaluate_kl(held_out, fixed)
    assert end < 0.9 * start, (start, end)
    assert all(m["prefixes"] == len(train) and m["seconds"] > 0 for m in metrics)
    assert 0 < metrics[-1]["topk_mass"] <= 1.0 + 1e-6


def test_merge_folds_the_adapter_into_the_base(tiny_lm):
    d = Distiller(tiny_lm, config())
    batch = prefixes([0])
    d.step(batch)
    d.step(batch)
    scored = d.build(batch, d.sample(batch))
    with torch.no_grad():
        student, _ = d.response_logits([s.student_ids for s in scored], [s.response_len for s in scored])
    d.merge()
    ids = torch.tensor([scored[0].student_ids])
    with torch.no_grad():
        merged = tiny_lm.model(ids).logits[:, -scored[0].response_len - 1:-1]
    assert torch.allclose(merged, student[:1, -scored[0].response_len:], atol=1e-4)
    assert not any("lora_" in n for n, _ in tiny_lm.model.named_parameters())


def test_the_teachers_own_answers_are_learnt_as_given(tiny_lm):
    """The off-policy baseline: an answer that ended gets the end-of-turn token, one that was cut
    does not, and one longer than the response budget is cut to it; none is sampled."""
    from dataclasses import replace as swap

    d = Distiller(tiny_lm, config(loss="offpolicy", max_new_tokens=8))
    p = prefixes([3])[0]
    tok = tiny_lm.tokenizer
    end = tok.get_vocab()["<|im_end|>"]
    words = tok("go [up]", add_special_tokens=False)["input_ids"]
    ended, cut, long = (swap(p, response="go [up]"), swap(p, response="go [up]", response_ended=False),
                        swap(p, response="go [up] " * 20))
    assert d.given_responses([ended, cut]) == [words + [end], words]
    assert len(d.given_responses([long])[0]) == 8 and end not in d.given_responses([long])[0]
    assert d.given_responses([ended, p]) is None  # one without an answer: the step samples them all


def test_a_nan_batch_skips_the_optimizer_step(tiny_lm):
    d = Distiller(tiny_lm, config())
    lora = {n: p.detach().clone() for n, p in d.peft.named_parameters() if "lora_" in n}
    real_loss = d.loss_on
    d.loss_on = lambda *a: (lambda out: (out[0] * float("nan"), out[1]))(real_loss(*a))
    metrics = d.step(prefixes([0]))
    assert metrics["skipped"] is True and metrics["grad_norm"] is None
    for n, p in d.peft.named_parameters():
        if "lora_" in n:
            assert torch.isfinite(p).all() and torch.equal(p, lora[n]), n
    d.loss_on = real_loss
    assert d.step(prefixes([0]))["skipped"] is False  # and training goes on


def test_student_sampling_is_chunked_by_the_batch_size(tiny_lm):
    tiny_lm.config = replace(tiny_lm.config, batch_size=2)
    d = Distiller(tiny_lm, config())
    rows = []
    real = tiny_lm.generator.generate

    def spy(prompts, *args, **kwargs):
        rows.append(len(prompts))
        return real(prompts, *args, **kwargs)

    tiny_lm.generator.generate = spy
    batch = prefixes([0, 1, 2])[:5]
    responses = d.sample(batch)
    assert len(responses) == 5 and rows and max(rows) <= 2 and sum(rows) == 5


def test_lora_initialisation_is_seeded(tiny_tokenizer):
    def lora_a(seed):
        torch.manual_seed(1234 + seed * 7)  # a different global RNG state each time
        d = Distiller(new_lm(tiny_tokenizer), config(), seed=seed)
        return {n: p.detach().clone() for n, p in d.peft.named_parameters() if "lora_A" in n}

    first, again, other = lora_a(5), lora_a(5), lora_a(6)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert any(not torch.equal(first[n], other[n]) for n in first)
    lm = new_lm(tiny_tokenizer)  # building a tiny model seeds the global RNG itself: do it first
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    Distiller(lm, config(), seed=9)
    assert torch.equal(torch.rand(3), expected)  # everyone else's random stream is untouched
