"""Our top-k reverse KL against TRL's SDFT loss on the same logits (bench/consolidate.py compares
the two trainers, so their losses must be the same objective)."""

import pytest
import torch

from oel_engine.consolidation.losses import topk_reverse_kl

sdft_loss = pytest.importorskip("trl.experimental.sdft.loss_utils", reason="TRL is the optional [trl] extra")


def random_logits(seed: int, batch=3, length=7, vocab=600):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=g) * 3
    teacher = student + torch.randn(batch, length, vocab, generator=g) * 2  # related, not equal
    mask = torch.ones(batch, length)
    mask[0, 5:] = 0  # a short response: padding after its end
    mask[2, 3:] = 0
    return student, teacher, mask


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("k", [256, 17])
def test_topk_reverse_kl_equals_trl_compute_divergence(temperature, k):
    student, teacher, mask = random_logits(seed=k)
    ours_in = student.clone().requires_grad_(True)
    loss, _ = topk_reverse_kl(ours_in, teacher, mask, k=k, temperature=temperature, renormalize=True)
    loss.backward()

    # TRL scales logits by 1/temperature in its forward, renormalises the student's top-k support
    # (no tail bucket) and takes compute_divergence with alpha 1 = KL(student || teacher).
    trl_in = student.clone().requires_grad_(True)
    per_token = sdft_loss.compute_topk_self_distillation_loss(
        trl_in / temperature, teacher / temperature,
        distillation_topk=k, distillation_alpha=1.0, distillation_add_tail=False)
    trl_loss = (per_token * mask).sum() / mask.sum()  # token mean, as ours
    trl_loss.backward()

    assert loss.item() > 1e-3  # a real divergence, not two zeros
    assert abs(loss.item() - trl_loss.item()) < 1e-5
    assert torch.allclose(ours_in.grad, trl_in.grad, atol=1e-6)


def test_the_default_without_renormalisation_is_a_different_objective():
    student, teacher, mask = random_logits(seed=3)
    ours, _ = topk_reverse_kl(student, teacher, mask, k=17, temperature=1.0, renormalize=False)
    per_token = sdft_loss.compute_topk_self_distillation_loss(
        student, teacher, distillation_topk=17, distillation_alpha=1.0, distillation_add_tail=False)
    assert abs(ours.item() - ((per_token * mask).sum() / mask.sum()).item()) > 1e-3
