"""Distillation losses over response positions.

Shapes: logits [B, R, V] for the R response positions (the logits that predict each response
token), mask [B, R] (1 for tokens up to and including the first end token). Logits are divided
by the sampling temperature before log_softmax, as in the reference. Every loss is a mean over
masked tokens; stats are floats for the metrics file.

- `topk_reverse_kl`: on-policy (the reference): support = the student's top-k ids at each
  position (no grad); sum over it of p_s (log p_s - log p_t), p_s with gradient, no
  renormalisation unless asked. `captured_mass` is the student's probability inside the
  support: watch it, since without renormalisation the loss can also fall by shrinking it.
- `full_reverse_kl`: the same over the whole vocabulary (exact KL(student || teacher)).
- `topk_forward_kl`: the off-policy baseline: teacher's top-k support, p_t (log p_t - log p_s),
  on responses the teacher wrote.
"""

from __future__ import annotations

import torch


def _log_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def topk_reverse_kl(student_logits, teacher_logits, mask, k: int = 256, temperature: float = 0.7,
                    renormalize: bool = False):
    log_ps = _log_probs(student_logits, temperature)
    with torch.no_grad():
        log_pt = _log_probs(teacher_logits, temperature)
        support = log_ps.detach().topk(min(k, log_ps.shape[-1]), dim=-1).indices
    s = log_ps.gather(-1, support)
    t = log_pt.gather(-1, support)
    if renormalize:
        s = s - torch.logsumexp(s, dim=-1, keepdim=True)
        t = t - torch.logsumexp(t, dim=-1, keepdim=True)
    per_token = (s.exp() * (s - t)).sum(-1)
    loss = _token_mean(per_token, mask)
    with torch.no_grad():
        captured = _token_mean(log_ps.gather(-1, support).exp().sum(-1), mask)
        full = _token_mean((log_ps.exp() * (log_ps - log_pt)).sum(-1), mask)
    return loss, {"loss": loss.item(), "reverse_kl": full.item(), "topk_mass": captured.item()}


def full_reverse_kl(student_logits, teacher_logits, mask, temperature: float = 0.7):
    log_ps = _log_probs(student_logits, temperature)
    with torch.no_grad():
        log_pt = _log_probs(teacher_logits, temperature)
    loss = _token_mean((log_ps.exp() * (log_ps - log_pt)).sum(-1), mask)
    return loss, {"loss": loss.item(), "reverse_kl": loss.item(), "topk_mass": 1.0}


def topk_forward_kl(student_logits, teacher_logits, mask, k: int = 256, temperature: float = 0.7):
    log_ps = _log_probs(student_logits, temperature)
    with torch.no_grad():
        log_pt = _log_probs(teacher_logits, temperature)
        support = log_pt.topk(min(k, log_pt.shape[-1]), dim=-1).indices
        t = log_pt.gather(-1, support)
    s = log_ps.gather(-1, support)
    loss = _token_mean((t.exp() * (t - s)).sum(-1), mask)
    with torch.no_grad():
        reverse = _token_mean((log_ps.exp() * (log_ps - log_pt)).sum(-1), mask)
        captured = _token_mean(t.exp().sum(-1), mask)
    return loss, {"loss": loss.item(), "reverse_kl": reverse.item(), "topk_mass": captured.item()}


LOSSES = ("topk", "full", "offpolicy")
