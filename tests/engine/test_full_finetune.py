"""Full fine-tuning (ConsolidationConfig.update = "full"): every weight trains against a frozen copy
of the round's starting weights, a round leaves its whole model, and every reader applies it."""

from dataclasses import replace

import pytest
import torch

from oel_engine.consolidation.trainer import Distiller
from oel_engine.errors import OelError
from oel_engine.model.loader import load_language_model
from oel_engine.model.round_weights import is_full_model
from oel_engine.play.agents import AgentChoice
from oel_engine.session import Engine
from tests.support import distill_config as config
from tests.support import folder_config, prefixes


def test_every_weight_trains_and_the_teacher_stays_the_rounds_start(tiny_lm):
    start = {n: p.detach().clone() for n, p in tiny_lm.model.named_parameters()}
    d = Distiller(tiny_lm, config(update="full", learning_rate=1e-3))
    batch = prefixes([0, 1])
    scored = d.build(batch, d.sample(batch))
    with torch.no_grad(), d.teacher():
        teacher_before, _ = d.response_logits([s.teacher_ids for s in scored], [s.response_len for s in scored])
    metrics = d.step(batch)
    assert metrics["loss"] is not None and not metrics["skipped"]
    changed = [n for n, p in tiny_lm.model.named_parameters() if not torch.equal(p, start[n])]
    assert len(changed) == len(start)  # no adapter: the model's own weights moved, every one of them
    assert not any("lora_" in n for n, _ in tiny_lm.model.named_parameters())
    with torch.no_grad(), d.teacher():
        teacher_after, _ = d.response_logits([s.teacher_ids for s in scored], [s.response_len for s in scored])
    torch.testing.assert_close(teacher_after, teacher_before)  # the teacher is the frozen start
    state = d.state()
    assert set(state) == {"model", "optimizer"}
    d.merge()
    assert d.frozen_teacher is None and not any(p.requires_grad for p in tiny_lm.model.parameters())


def test_a_stopped_full_round_leaves_no_weights_claiming_to_be_a_round(tiny_lm):
    d = Distiller(tiny_lm, config(update="full"))
    d.step(prefixes([2]))
    d.detach()
    owner, _ = tiny_lm.merged
    assert owner == "changed by a stopped round"  # the next stage reloads the round's weights


def test_a_full_fine_tuned_run_keeps_whole_models_that_every_reader_applies(tmp_path, tiny_folder):
    tiny = folder_config(tiny_folder, rounds=2)
    cfg = replace(tiny, consolidation=replace(tiny.consolidation, update="full", learning_rate=1e-3))
    engine = Engine(tmp_path)
    with engine.session("full", cfg) as s:
        s.run_rounds(2)
    run = tmp_path / "full"
    assert all(is_full_model(run / "adapters" / f"round-{r}") for r in (0, 1))
    merged = load_language_model(replace(cfg.model, model=str(engine.merge("full", tmp_path / "merged"))))
    round1 = load_language_model(replace(cfg.model, model=str(run / "adapters" / "round-1")))
    for (n, a), (_, b) in zip(merged.model.named_parameters(), round1.model.named_parameters()):
        assert torch.equal(a, b), n  # `oel merge` is round 1's whole model
    ids = [merged.encode_chat([{"role": "user", "content": "You are an agent. Current situation:\nP"}])]
    engine.use_agent(AgentChoice("full", 2))  # Play: the newest round's model
    torch.testing.assert_close(engine.lm.generator.next_token_logits(ids), merged.generator.next_token_logits(ids))
    engine.use_agent(AgentChoice("full", 0))  # and back to the base
    base = load_language_model(cfg.model)
    torch.testing.assert_close(engine.lm.generator.next_token_logits(ids), base.generator.next_token_logits(ids))


def test_the_trl_backend_refuses_full_fine_tuning(tiny_lm):
    pytest.importorskip("trl")
    from oel_engine.consolidation.trl_backend import TrlDistiller

    with pytest.raises(OelError, match="full fine-tuning runs with --backend ours"):
        TrlDistiller(tiny_lm, config(update="full", backend="trl"))
