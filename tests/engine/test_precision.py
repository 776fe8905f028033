"""Sampling and consolidation precision chosen by measurement on the CPU at hand, and recorded in the run."""


import pytest
import torch

from oel_engine.config import ModelConfig
from oel_engine.events import StopFlag
from oel_engine.session import Engine
from tests.support import distill_config as distill_config
from tests.support import folder_config


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


def autocast_choice_timed_by(monkeypatch, timed):
    """What `auto` picks when `timed(autocast)` gives each timing (the measurement not cached)."""
    from oel_engine.model import precision

    precision.measure_cpu_bf16.cache_clear()
    monkeypatch.setattr(precision, "_time_step", timed)
    try:
        return precision.choose_autocast("auto", torch.device("cpu"))
    finally:
        precision.measure_cpu_bf16.cache_clear()


def test_a_busy_moment_does_not_pick_a_slow_bf16(monkeypatch):
    """Other work on the CPU during the first few timings (x20) must not make a bf16 that is
    10x slower look faster: both precisions are timed through the busy moment alike."""
    calls = {"n": 0}

    def timed(autocast):
        calls["n"] += 1
        busy = 20 if calls["n"] <= 4 else 1
        return (0.05 if autocast else 0.005) * busy

    choice = autocast_choice_timed_by(monkeypatch, timed)
    assert choice.choice == "float32" and choice.bf16_speedup < 1


def test_a_slow_first_bf16_call_does_not_pick_float32(monkeypatch):
    """A process's first bf16 call sets up its kernels (measured 15x a warm one right after a
    model load): that one call must not make a faster bf16 look too slow to try again."""
    seen = {"bf16": 0}

    def timed(autocast):
        if not autocast:
            return 0.002
        seen["bf16"] += 1
        return 0.030 if seen["bf16"] == 1 else 0.001

    choice = autocast_choice_timed_by(monkeypatch, timed)
    assert choice.choice == "bf16" and choice.bf16_speedup == pytest.approx(2.0)


def test_the_precision_choice_is_recorded_in_the_run(tmp_path, tiny_folder):
    from oel_engine.metrics import PrecisionChoice

    engine = Engine(tmp_path)
    engine.open_run("r", folder_config(tiny_folder, rounds=1))
    engine.run_stage("r", "consolidate", lambda e: None, StopFlag())
    choice = engine.report("r").metrics.last(PrecisionChoice)
    assert choice is not None and choice.choice in ("float32", "bf16") and choice.float32_seconds > 0
