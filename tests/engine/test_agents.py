"""Play's model picker in the engine: a run's rounds as adapters switched on one base equal the
merged models `oel merge` writes, a finished round appears, and stages get the plain base back."""

from __future__ import annotations

import pytest
import torch

from oel_engine.config import GameConfig, ModelConfig
from oel_engine.play.agents import AgentChoice, choices_for, newest
from oel_engine.presets import build
from oel_engine.run.artifacts import RunArtifacts
from oel_engine.run.store import RunStore
from oel_engine.session import Engine

PROMPT = [{"role": "user", "content": "You are an agent playing a grid game. Current situation:\nP _ G\n\nWhat action?"}]


def save_round_adapter(lm_model, folder, seed: int) -> None:
    """A LoRA adapter with random (non-zero) B, as if round training had moved it."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft = get_peft_model(lm_model, config)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    peft.save_pretrained(folder)
    peft.unload()


@pytest.fixture()
def run_with_rounds(tmp_path, tiny_folder):
    """A run on the tiny model with two rounds' adapters, each made on the previous merge."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    engine = Engine(tmp_path / "saves")
    config = build("demo", GameConfig(), ModelConfig(model=str(tiny_folder), inference_dtype="float32"), 2)
    engine.open_run("r", config)
    with RunStore(engine.saves, "r") as store:
        art = RunArtifacts(store)
        model = AutoModelForCausalLM.from_pretrained(tiny_folder)
        for r in range(2):
            save_round_adapter(model, art.adapter_dir(r), seed=10 + r)
            model = PeftModel.from_pretrained(model, str(art.adapter_dir(r))).merge_and_unload()
    return engine


def logits_of(lm) -> torch.Tensor:
    ids = lm.encode_chat(PROMPT)
    return lm.generator.next_token_logits([ids])[0]


def merged_logits(engine: Engine, tmp_path, last_round: int | None) -> torch.Tensor:
    from oel_engine.model.loader import load_language_model

    if last_round is None:
        folder = engine.report("r").config.model.model
    else:
        folder = engine.merge("r", tmp_path / f"merged-{last_round}", last_round)
    return logits_of(load_language_model(ModelConfig(model=str(folder), inference_dtype="float32")))


def test_each_choice_equals_the_merged_model_of_its_round(run_with_rounds, tmp_path):
    engine = run_with_rounds
    choices = engine.agent_choices("r")
    assert [c.key for c in choices] == ["base", "round-0", "round-1"]  # no experience: no teacher
    expected = {c.key: merged_logits(engine, tmp_path, None if c.rounds == 0 else c.rounds - 1) for c in choices}
    assert not torch.allclose(expected["round-0"], expected["base"], atol=1e-3)  # the rounds change the model
    assert not torch.allclose(expected["round-1"], expected["round-0"], atol=1e-3)
    # any order of switching: each choice reads as its merged model, with one copy of the base
    for choice in [choices[2], choices[0], choices[1], choices[2], choices[0]]:
        engine.use_agent(choice)
        torch.testing.assert_close(logits_of(engine.lm), expected[choice.key], atol=2e-5, rtol=1e-5)
    assert sum("base_layer" in n for n, _ in engine.lm.model.named_modules()) > 0  # adapters stacked, not merged


def test_a_finished_round_appears_and_stages_get_the_plain_base(run_with_rounds, tmp_path):
    engine = run_with_rounds
    engine.use_agent(AgentChoice("r", 2))
    base = merged_logits(engine, tmp_path, None)
    with RunStore(engine.saves, "r") as store:  # round 2 finishes (here: its adapter lands)
        save_round_adapter(_plain_copy(engine), RunArtifacts(store).adapter_dir(2), seed=12)
    choices = engine.agent_choices("r")
    assert newest(choices) == AgentChoice("r", 3)
    engine.use_agent(newest(choices))
    assert not torch.allclose(logits_of(engine.lm), base, atol=1e-3)
    engine.release_agents()
    assert not any("lora_" in n for n, _ in engine.lm.model.named_parameters())
    torch.testing.assert_close(logits_of(engine.lm), base, atol=2e-5, rtol=1e-5)


def _plain_copy(engine):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(engine.report("r").config.model.model)


def test_the_teacher_reads_the_runs_lessons_with_the_newest_weights(run_with_rounds):
    engine = run_with_rounds
    engine.add_item("r", "Go [down] or [right].")
    choices = engine.agent_choices("r")
    teacher = choices[-1]
    assert teacher.teacher and teacher.rounds == 2 and "teacher" in teacher.label
    assert engine.use_agent(teacher) == "- EXPERIENCE ITEM: Go [down] or [right]."
    assert engine.use_agent(choices[1]) is None


def test_choices_without_a_run_are_the_loaded_model():
    assert choices_for(None, 3, True) == [AgentChoice(None)]
    assert AgentChoice(None).label == "the model loaded on Start"
    assert [c.label for c in choices_for("x", 1, True)] == [
        "base model", "round 0 (consolidated)", "teacher (round 0's model + the run's experience in its prompt)"]


def test_the_bf16_sampling_copy_follows_the_choice(run_with_rounds, tmp_path):
    """Where sampling runs on a bf16 copy, the copy holds the chosen round's weights."""
    from transformers import AutoModelForCausalLM

    engine = run_with_rounds
    # unpacked and unfused, to read the copy's weights by name (test_packed_linear holds packed =
    # unpacked, test_decode_step fused = unfused)
    engine.load_model(ModelConfig(model=engine.report("r").config.model.model, inference_dtype="bf16",
                                  pack_weights=False, fast_decode=False))
    for rounds in (2, 0, 1):
        engine.use_agent(AgentChoice("r", rounds))
        copy = dict(engine.lm.inference_model().named_parameters())
        folder = (engine.report("r").config.model.model if rounds == 0
                  else engine.merge("r", tmp_path / f"m{rounds}-{len(list(tmp_path.iterdir()))}", rounds - 1))
        merged = dict(AutoModelForCausalLM.from_pretrained(folder).named_parameters())
        for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"):
            torch.testing.assert_close(copy[name], merged[name].to(torch.bfloat16))
