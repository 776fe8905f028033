"""A loaded model kept across stages and runs: each round's update applied once, a run switch starting again from the base, a cancelled consolidation leaving nothing behind."""


import pytest
import torch

from oel_engine.config import ModelConfig
from oel_engine.errors import Stopped
from oel_engine.events import StopFlag
from oel_engine.model.loader import load_language_model
from oel_engine.session import Engine
from tests.support import distill_config as distill_config
from tests.support import folder_config, stop_at


def weights(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def base_plus_adapters(folder, run_dir, rounds):
    """What round `rounds`'s policy must be: the base with adapters 0..rounds-1 merged once each."""
    from peft import PeftModel

    lm = load_language_model(ModelConfig(model=str(folder), device="cpu"))
    model = lm.model
    for r in range(rounds):
        model = PeftModel.from_pretrained(model, str(run_dir / "adapters" / f"round-{r}")).merge_and_unload()
    return weights(model)


def assert_same_weights(model, expected):
    got = weights(model)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert torch.allclose(got[name], value, atol=1e-5), name


def test_a_model_kept_across_stages_merges_each_adapter_once(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder))
    engine.run_stage("r", "round", lambda e: None, StopFlag())
    assert_same_weights(engine.lm.model, base_plus_adapters(tiny_folder, tmp_path / "r", 1))
    engine.run_stage("r", "extract", lambda e: None, StopFlag())  # round 1 starts from base + delta0, once
    assert engine.lm.merged[1] == 1
    assert_same_weights(engine.lm.model, base_plus_adapters(tiny_folder, tmp_path / "r", 1))
    engine.run_stage("r", "round", lambda e: None, StopFlag())
    assert_same_weights(engine.lm.model, base_plus_adapters(tiny_folder, tmp_path / "r", 2))


def test_switching_runs_starts_again_from_the_base(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("a", folder_config(tiny_folder, rounds=1))
    engine.run_stage("a", "round", lambda e: None, StopFlag())
    engine.open_run("b", folder_config(tiny_folder, rounds=1))
    engine.run_stage("b", "extract", lambda e: None, StopFlag())
    assert engine.lm.merged == (None, 0)
    assert_same_weights(engine.lm.model, base_plus_adapters(tiny_folder, tmp_path / "b", 0))


def test_a_kept_model_batches_as_each_run_says(tmp_path, tiny_folder):
    from dataclasses import replace

    engine = Engine(tmp_path)
    small = folder_config(tiny_folder, rounds=1)
    engine.open_run("a", replace(small, model=replace(small.model, batch_size=3)))
    engine.run_stage("a", "extract", lambda e: None, StopFlag())
    loaded = engine.lm
    assert loaded.config.batch_size == 3
    engine.open_run("b", replace(small, model=replace(small.model, batch_size=5)))
    engine.run_stage("b", "extract", lambda e: None, StopFlag())
    assert engine.lm is loaded and engine.lm.config.batch_size == 5  # kept, not reloaded, and batching as b says


def test_a_cancelled_consolidation_drops_its_adapter_and_can_start_again(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    engine.run_stage("r", "collect", lambda e: None, StopFlag())
    before = weights(engine.lm.model)
    on_event, stop = stop_at("consolidate", 2)
    with pytest.raises(Stopped):
        engine.run_stage("r", "consolidate", on_event, stop)
    assert not any("lora_" in n for n, _ in engine.lm.model.named_parameters())
    assert_same_weights(engine.lm.model, before)  # the round's starting policy, nothing half-trained
    engine.run_stage("r", "consolidate", lambda e: None, StopFlag())  # used to raise AttributeError in PEFT
    assert (tmp_path / "r" / "adapters" / "round-0" / "adapter_config.json").is_file()
    assert_same_weights(engine.lm.model, base_plus_adapters(tiny_folder, tmp_path / "r", 1))
