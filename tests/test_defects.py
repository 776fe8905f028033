"""Regression tests for the defects a close reading found (issue 7), each on a tiny model."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from oel_engine.config import ModelConfig
from oel_engine.consolidation.trainer import Distiller
from oel_engine.errors import OelError, Stopped
from oel_engine.events import Progress, StopFlag
from oel_engine.model.loader import load_language_model
from oel_engine.session import Engine

from .test_distiller import config as distill_config
from .test_distiller import prefixes
from .test_loop import new_lm, tiny_config


def folder_config(folder, rounds=2):
    return replace(tiny_config(rounds), model=ModelConfig(model=str(folder), batch_size=8, device="cpu"))


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


def stop_at(stage, n):
    """An event sink that sets the returned flag at the n-th Progress event of `stage`."""
    stop, seen = StopFlag(), {"n": 0}

    def on_event(event):
        if isinstance(event, Progress) and event.stage == stage:
            seen["n"] += 1
            if seen["n"] == n:
                stop.set()

    return on_event, stop


# 1. One model kept across stages (the app) must not get earlier rounds merged again.
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


# 2. A stopped consolidation leaves no adapter switched on; starting it again works.
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


# 3. A non-finite gradient norm skips the step (counted), never writes NaN into the adapter.
def test_a_nan_batch_skips_the_optimizer_step(tiny_lm):
    d = Distiller(tiny_lm, distill_config())
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


# 4. Student sampling respects the batch size.
def test_student_sampling_is_chunked_by_the_batch_size(tiny_lm):
    tiny_lm.config = replace(tiny_lm.config, batch_size=2)
    d = Distiller(tiny_lm, distill_config())
    rows = []
    real = tiny_lm.generator.generate

    def spy(prompts, *args, **kwargs):
        rows.append(len(prompts))
        return real(prompts, *args, **kwargs)

    tiny_lm.generator.generate = spy
    batch = prefixes([0, 1, 2])[:5]
    responses = d.sample(batch)
    assert len(responses) == 5 and rows and max(rows) <= 2 and sum(rows) == 5


# 5. An edit, then resuming an unfinished extraction: no step is replayed, no item doubled.
def test_an_edit_then_resuming_extraction_does_not_double_items(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    on_event, stop = stop_at("extract", 2)  # the 2nd progress event: after step 1
    with pytest.raises(Stopped):
        engine.run_stage("r", "extract", on_event, stop)
    item = next(i for i in engine.experience("r") if i.run == 0 and i.step == 1)
    engine.set_item("r", item, enabled=False, text=item.text)
    engine.run_stage("r", "extract", lambda e: None, StopFlag())
    index = [json.loads(l) for l in (tmp_path / "r" / "experience" / "index.jsonl").read_text().splitlines()]
    extracted = [rec for rec in index if rec["kind"] == "extract"]
    assert sorted((rec["run"], rec["step"]) for rec in extracted) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    last = {(rec["run"], rec["step"]): rec for rec in index}
    for run in (0, 1):
        step1 = [i["text"] for i in last[(run, 1)]["items"]]
        assert step1
        step2_old = [i["text"] for i in last[(run, 2)]["items"] if i["step"] == 1]
        assert step2_old == step1[-len(step2_old):] if step2_old else True  # at most once, never twice
        assert len(step2_old) <= len(step1)
    kept = [i for i in last[(0, 2)]["items"] if i["step"] == 1 and i["text"] == item.text]
    assert all(not i["enabled"] for i in kept)  # the edit carried into later steps


# 6. LoRA initialisation is seeded (reproducible runs, the same start after a crash in step 0).
def test_lora_initialisation_is_seeded(tiny_tokenizer):
    def lora_a(seed):
        torch.manual_seed(1234 + seed * 7)  # a different global RNG state each time
        d = Distiller(new_lm(tiny_tokenizer), distill_config(), seed=seed)
        return {n: p.detach().clone() for n, p in d.peft.named_parameters() if "lora_A" in n}

    first, again, other = lora_a(5), lora_a(5), lora_a(6)
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert any(not torch.equal(first[n], other[n]) for n in first)
    lm = new_lm(tiny_tokenizer)  # building a tiny model seeds the global RNG itself: do it first
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    Distiller(lm, distill_config(), seed=9)
    assert torch.equal(torch.rand(3), expected)  # everyone else's random stream is untouched


# 9. CPU precision is measured, recorded in the run, never assumed.
def test_auto_precision_follows_the_measurement(monkeypatch):
    from oel_engine.model import precision

    precision.measure_cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_time_step", lambda autocast: 0.5 if autocast else 0.01)
    slow = precision.choose_autocast("auto", torch.device("cpu"))
    assert slow.choice == "float32" and slow.bf16_speedup == pytest.approx(0.02)
    precision.measure_cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_time_step", lambda autocast: 0.005 if autocast else 0.01)
    assert precision.choose_autocast("auto", torch.device("cpu")).choice == "bf16"
    assert precision.choose_autocast("off", torch.device("cpu")).choice == "float32"
    precision.measure_cpu_bf16.cache_clear()
    from oel_engine.config import GameConfig
    from oel_engine.presets import build

    assert build("demo", GameConfig(), ModelConfig(), 1).consolidation.autocast == "auto"


def test_a_busy_moment_does_not_pick_a_slow_bf16(monkeypatch):
    """Other work on the CPU during the first few timings (x20) must not make a bf16 that is
    10x slower look faster: both precisions are timed through the busy moment alike."""
    from oel_engine.model import precision

    calls = {"n": 0}

    def timed(autocast):
        calls["n"] += 1
        busy = 20 if calls["n"] <= 4 else 1
        return (0.05 if autocast else 0.005) * busy

    precision.measure_cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_time_step", timed)
    try:
        choice = precision.choose_autocast("auto", torch.device("cpu"))
    finally:
        precision.measure_cpu_bf16.cache_clear()
    assert choice.choice == "float32" and choice.bf16_speedup < 1


def test_the_precision_choice_is_recorded_in_the_run(tmp_path, tiny_folder):
    from oel_engine.metrics import PrecisionChoice

    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    engine.run_stage("r", "consolidate", lambda e: None, StopFlag())
    choice = engine.report("r").metrics.last(PrecisionChoice)
    assert choice is not None and choice.choice in ("float32", "bf16") and choice.float32_seconds > 0


# 10. Reading a run never takes the writer lock; a lock message never blames another process
# when the holder is this one.
def test_reading_a_run_while_this_process_writes_it(tmp_path, tiny_folder):
    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    with engine.session("r", holder="its round job"):
        report = engine.report("r")
        assert report.name == "r" and report.rounds_done == 0
        assert engine.experience("r") == []
        assert [r.name for r in engine.runs()] == ["r"]
        with pytest.raises(OelError) as err:
            engine.session("r")
        assert "busy in this app (its round job)" in str(err.value) and "another process" not in str(err.value)


def test_a_lock_held_by_another_process_says_so(tmp_path):
    from oel_engine.run.store import RunStore

    RunStore(tmp_path, "r").close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from oel_engine.run.store import RunStore; "
        f"s = RunStore({str(tmp_path)!r}, 'r'); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OelError, match="another process"):
            RunStore(tmp_path, "r")
        RunStore(tmp_path, "r", readonly=True).close()  # readers are never blocked
    finally:
        holder.kill()
        holder.wait()
