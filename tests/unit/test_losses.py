"""The distillation losses against hand-computed values."""

import math

import torch

from oel_engine.consolidation.losses import (
    full_reverse_kl,
    topk_forward_kl,
    topk_reverse_kl,
)


def probs_to_logits(p):
    return torch.log(torch.tensor(p, dtype=torch.float32))


def test_reverse_kl_direction_and_value_by_hand():
    ps, pt = [0.7, 0.2, 0.1], [0.4, 0.4, 0.2]
    s = probs_to_logits(ps).view(1, 1, 3)
    t = probs_to_logits(pt).view(1, 1, 3)
    mask = torch.ones(1, 1)
    expected_reverse = sum(a * math.log(a / b) for a, b in zip(ps, pt))  # KL(student || teacher)
    expected_forward = sum(b * math.log(b / a) for a, b in zip(ps, pt))
    loss, stats = full_reverse_kl(s, t, mask, temperature=1.0)
    assert abs(loss.item() - expected_reverse) < 1e-6
    assert abs(expected_reverse - expected_forward) > 1e-3  # the direction matters here
    loss_k, stats_k = topk_reverse_kl(s, t, mask, k=3, temperature=1.0)
    assert abs(loss_k.item() - expected_reverse) < 1e-6 and abs(stats_k["topk_mass"] - 1.0) < 1e-6
    # top-2 support of the student: ids 0 and 1, no renormalisation
    loss_2, stats_2 = topk_reverse_kl(s, t, mask, k=2, temperature=1.0)
    by_hand = 0.7 * math.log(0.7 / 0.4) + 0.2 * math.log(0.2 / 0.4)
    assert abs(loss_2.item() - by_hand) < 1e-6 and abs(stats_2["topk_mass"] - 0.9) < 1e-6
    # renormalised over the support
    rs, rt = [0.7 / 0.9, 0.2 / 0.9], [0.5, 0.5]
    loss_r, _ = topk_reverse_kl(s, t, mask, k=2, temperature=1.0, renormalize=True)
    assert abs(loss_r.item() - sum(a * math.log(a / b) for a, b in zip(rs, rt))) < 1e-6
    fwd, _ = topk_forward_kl(s, t, mask, k=3, temperature=1.0)
    assert abs(fwd.item() - expected_forward) < 1e-6


def test_temperature_divides_logits():
    s = torch.tensor([[[2.0, 0.0, -1.0]]])
    t = torch.tensor([[[0.0, 1.0, 0.5]]])
    mask = torch.ones(1, 1)
    at_07, _ = full_reverse_kl(s, t, mask, temperature=0.7)
    at_1, _ = full_reverse_kl(s / 0.7, t / 0.7, mask, temperature=1.0)
    assert abs(at_07.item() - at_1.item()) < 1e-6


def test_mask_gives_token_mean_over_response_only():
    s = torch.randn(2, 4, 11)
    t = torch.randn(2, 4, 11)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    loss, _ = full_reverse_kl(s, t, mask, temperature=1.0)
    per_token = (s.log_softmax(-1).exp() * (s.log_softmax(-1) - t.log_softmax(-1))).sum(-1)
    assert abs(loss.item() - per_token[mask.bool()].mean().item()) < 1e-5


def test_zero_when_teacher_equals_student_and_gradient_flows_to_student_only():
    s = torch.randn(1, 3, 7, requires_grad=True)
    t = s.detach().clone().requires_grad_(True)
    mask = torch.ones(1, 3)
    loss, _ = topk_reverse_kl(s, t, mask, k=4, temperature=0.7)
    assert abs(loss.item()) < 1e-6
    shifted = s.detach() + torch.randn(1, 3, 7)
    s2 = shifted.clone().requires_grad_(True)
    loss2, _ = topk_reverse_kl(s2, t, mask, k=4, temperature=0.7)
    loss2.backward()
    assert s2.grad is not None and s2.grad.abs().sum() > 0
    assert t.grad is None
